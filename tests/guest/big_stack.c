/* Large stack frames (several MiB in total) and deep recursion. */
#include <stdio.h>
#include <string.h>
static unsigned long deep(int n, unsigned long acc) {
    volatile char frame[1024];
    memset((char *)frame, n & 0xff, sizeof frame);
    if (n == 0) return acc;
    return deep(n - 1, acc * 31 + frame[n % 1024]);
}
int main(void) {
    char big[3 << 20];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
    unsigned long s = 0;
    for (size_t i = 0; i < sizeof big; i += 4093) s += (unsigned char)big[i];
    printf("big array checksum %lu\n", s);
    printf("deep recursion result %lu\n", deep(3000, 1));
    return 0;
}
