/* Sieve of Eratosthenes and prime gaps: tight loops over a byte array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    const int n = 2000000;
    char *composite = calloc(n + 1, 1);
    for (long i = 2; i * i <= n; i++)
        if (!composite[i])
            for (long j = i * i; j <= n; j += i) composite[j] = 1;
    int count = 0, last = 2, maxgap = 0, gapat = 0;
    for (int i = 2; i <= n; i++)
        if (!composite[i]) {
            count++;
            if (i - last > maxgap) maxgap = i - last, gapat = last;
            last = i;
        }
    printf("%d primes below %d, largest %d, max gap %d after %d\n", count, n, last, maxgap, gapat);
    free(composite);
    return 0;
}
