/* printf of integers and strings in every width, base and flag combination. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
int main(void) {
    long long v[] = {0, 1, -1, 42, -42, 127, -128, 255, 32767, -32768, 65535, INT_MAX, INT_MIN, UINT_MAX,
                     LLONG_MAX, LLONG_MIN, 0x123456789abcdefLL};
    for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) {
        long long x = v[i];
        printf("[%d] [%5d] [%-5d|] [%+d] [%05d] [%x] [%#X] [%o] [%lld] [%llu] [%#llx] [%hhd] [%hu]\n", (int)x, (int)x,
               (int)x, (int)x, (int)x, (unsigned)x, (unsigned)x, (unsigned)x, x, (unsigned long long)x,
               (unsigned long long)x, (signed char)x, (unsigned short)x);
    }
    printf("[%s] [%10s] [%-10s|] [%.3s] [%c%c%c] [%%] [%p]\n", "kiln", "right", "left", "truncate", 'a', 'b', 'c', (void *)0);
    printf("%" PRId64 " %" PRIu32 " %" PRIx16 "\n", (int64_t)-5, (uint32_t)4000000000u, (uint16_t)0xbeef);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%s-%d-%s", "a long string to truncate", 12345, "x");
    printf("snprintf wanted %d, got \"%s\"\n", n, buf);
    return 0;
}
