/* qsort and bsearch over integers with a comparison callback. */
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}
int main(void) {
    enum { N = 50000 };
    static long v[N];
    unsigned long s = 88172645463325252ull;
    for (int i = 0; i < N; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; v[i] = (long)(s % 2000001) - 1000000; }
    qsort(v, N, sizeof v[0], cmp);
    int sorted = 1;
    for (int i = 1; i < N; i++) sorted &= v[i - 1] <= v[i];
    printf("sorted=%d min=%ld median=%ld max=%ld\n", sorted, v[0], v[N / 2], v[N - 1]);
    long key = v[12345];
    long *f = bsearch(&key, v, N, sizeof v[0], cmp);
    printf("bsearch found %ld: %d\n", key, f && *f == key);
    return 0;
}
