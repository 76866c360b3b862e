/* Integer parsing and formatting round trips: strtol/strtoul/atoi in several bases. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    const char *in[] = {"0", "42", "-42", "  +17xyz", "0x1f", "077", "9223372036854775807", "9223372036854775808",
                        "-9223372036854775809", "18446744073709551615", "zzz", "1010", "-0"};
    for (unsigned i = 0; i < sizeof in / sizeof in[0]; i++) {
        char *end;
        errno = 0;
        long v = strtol(in[i], &end, 0);
        int e1 = errno;
        errno = 0;
        unsigned long u = strtoul(in[i], NULL, 10);
        int e2 = errno;
        long b2 = strtol(in[i], NULL, 2);
        long b36 = strtol(in[i], NULL, 36);
        printf("\"%s\": strtol %ld (errno %d, rest \"%s\") strtoul %lu (errno %d) base2 %ld base36 %ld atoi %d\n", in[i], v,
               e1, end, u, e2, b2, b36, atoi(in[i]));
    }
    char buf[64];
    long total = 0;
    for (long k = -100000; k <= 100000; k += 997) {
        snprintf(buf, sizeof buf, "%ld", k * 12345);
        total += strtol(buf, NULL, 10) / 12345 == k;
    }
    printf("round trips ok: %ld\n", total);
    return 0;
}
