/* malloc/free/realloc churn over small, medium and mmap-sized blocks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    enum { N = 2000 };
    static char *p[N];
    static size_t sz[N];
    unsigned x = 12345;
    unsigned long sum = 0;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < N; i++) {
            x = x * 1103515245 + 12345;
            size_t n = (x >> 8) % (i % 97 == 0 ? 300000 : 700) + 1;
            if (p[i] && (x & 1)) {
                free(p[i]);
                p[i] = NULL;
            } else if (p[i]) {
                p[i] = realloc(p[i], n);
                if (n > sz[i]) memset(p[i] + sz[i], (int)n, n - sz[i]);
                sz[i] = n;
            } else {
                p[i] = malloc(n);
                memset(p[i], i, n);
                sz[i] = n;
            }
        }
        for (int i = 0; i < N; i++)
            if (p[i]) sum += (unsigned char)p[i][sz[i] / 2] + sz[i];
    }
    for (int i = 0; i < N; i++) free(p[i]);
    printf("churn checksum %lu\n", sum);
    void *big = calloc(1 << 22, 4);
    printf("calloc of 16 MiB is zeroed: %d\n", ((int *)big)[123456] == 0);
    free(big);
    return 0;
}
