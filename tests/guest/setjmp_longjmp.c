/* setjmp/longjmp across frames (glibc mangles the saved pointers with fs-relative guards). */
#include <setjmp.h>
#include <stdio.h>
static jmp_buf env;
static int depth;
static void dive(int n) {
    depth = n;
    if (n == 100) longjmp(env, n);
    dive(n + 1);
}
int main(void) {
    volatile int rounds = 0;
    int r = setjmp(env);
    printf("setjmp returned %d (round %d, depth %d)\n", r, rounds, depth);
    if (rounds++ < 3) dive(rounds * 10);
    return 0;
}
