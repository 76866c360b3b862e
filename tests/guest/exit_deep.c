/* exit() called from deep inside a recursion, with atexit handlers and buffered output. */
#include <stdio.h>
#include <stdlib.h>
static void bye(void) { printf("atexit handler ran\n"); }
static int descend(int n) {
    char pad[64];
    pad[n % 64] = (char)n;
    if (n == 0) { printf("bottom reached\n"); exit(42); }
    return descend(n - 1) + pad[n % 64];
}
int main(void) { atexit(bye); printf("start (buffered)\n"); return descend(5000); }
