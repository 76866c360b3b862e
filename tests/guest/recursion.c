/* Deep and branchy recursion: fib, ackermann, mutual recursion. */
#include <stdio.h>
static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
static int ack(int m, int n) { return m == 0 ? n + 1 : n == 0 ? ack(m - 1, 1) : ack(m - 1, ack(m, n - 1)); }
static int is_odd(unsigned n);
static int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }
static int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }
int main(void) {
    for (int i = 0; i < 28; i += 3) printf("fib(%d) = %ld\n", i, fib(i));
    printf("ack(2,3) = %d, ack(3,5) = %d\n", ack(2, 3), ack(3, 5));
    printf("is_even(10001) = %d, is_odd(7777) = %d\n", is_even(10001), is_odd(7777));
    return 0;
}
