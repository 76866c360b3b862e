/* Integer matrix multiply and transpose (loops that -O2/-O3 vectorise with SSE2). */
#include <stdint.h>
#include <stdio.h>
#define N 96
static int32_t a[N][N], b[N][N], c[N][N];
int main(void) {
    for (int i = 0; i < N; i++) for (int j = 0; j < N; j++) a[i][j] = (i * 3 + j) % 17 - 8, b[i][j] = (i ^ j) % 13 - 6;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) { int32_t s = 0; for (int k = 0; k < N; k++) s += a[i][k] * b[k][j]; c[i][j] = s; }
    int64_t trace = 0, sum = 0;
    for (int i = 0; i < N; i++) { trace += c[i][i]; for (int j = 0; j < N; j++) sum += c[i][j] * (j + 1); }
    uint8_t px[4096];
    for (int i = 0; i < 4096; i++) px[i] = (uint8_t)(i * 31);
    unsigned bright = 0;
    for (int i = 0; i < 4096; i++) bright += px[i] > 128 ? px[i] - 128 : 0;
    printf("trace %lld weighted sum %lld bright %u\n", (long long)trace, (long long)sum, bright);
    return 0;
}
