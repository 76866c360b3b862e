/* Loops the compiler vectorises at -O3 with SSE4.2 enabled: integer and float saxpy, dot
 * products and reductions, min/max, byte histograms and transforms, int8/int16/int32 widening
 * and narrowing, a float matrix multiply and qsort of doubles. */
#pragma GCC optimize("O3")
#pragma GCC target("sse4.2,popcnt")
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 4099
static float fa[N], fb[N], fc[N];
static double da[N];
static int32_t ia[N], ib[N], ic[N];
static int16_t sa[N];
static uint8_t ba[N], bb[N];

static int cmpd(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(void) {
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 1103515245 + 12345;
        fa[i] = (float)(s >> 8) / 65536.0f - 64.0f;
        fb[i] = (float)((s >> 3) & 1023) / 37.0f;
        ia[i] = (int32_t)s >> 4;
        ib[i] = (int32_t)(s * 2654435761u) >> 7;
        sa[i] = (int16_t)(s >> 11);
        ba[i] = (uint8_t)(s >> 17);
        da[i] = (double)(int32_t)s / 1e4;
    }
    for (int i = 0; i < N; i++) fc[i] = 2.5f * fa[i] + fb[i];
    float dot = 0; for (int i = 0; i < N; i++) dot += fa[i] * fb[i];
    float mn = fa[0], mx = fa[0]; for (int i = 0; i < N; i++) { mn = fa[i] < mn ? fa[i] : mn; mx = fa[i] > mx ? fa[i] : mx; }
    for (int i = 0; i < N; i++) ic[i] = ia[i] * 3 + (ib[i] >> 2) - (ia[i] & ib[i]);
    int64_t isum = 0; for (int i = 0; i < N; i++) isum += ic[i];
    int32_t imin = ia[0], imax = ia[0]; for (int i = 0; i < N; i++) { imin = ia[i] < imin ? ia[i] : imin; imax = ia[i] > imax ? ia[i] : imax; }
    uint32_t hist[16] = {0}; for (int i = 0; i < N; i++) hist[ba[i] >> 4]++;
    for (int i = 0; i < N; i++) bb[i] = (uint8_t)(ba[i] >= 'a' && ba[i] <= 'z' ? ba[i] - 32 : ba[i] ^ 0x5a);
    uint32_t bsum = 0; for (int i = 0; i < N; i++) bsum += bb[i] * (i & 7);
    int64_t ssum = 0; for (int i = 0; i < N; i++) ssum += (int32_t)sa[i] * sa[N - 1 - i];
    for (int i = 0; i < N; i++) sa[i] = (int16_t)(ia[i] >> 16) + (int16_t)ba[i];
    uint32_t pc = 0; for (int i = 0; i < N; i++) pc += __builtin_popcount((uint32_t)ia[i]);
    printf("saxpy %.9g %.9g  dot %.9g  min %.9g max %.9g\n", fc[17], fc[N - 1], dot, mn, mx);
    printf("int %lld  min %d max %d  short %lld  bytes %u  popcount %u\n", (long long)isum, imin, imax,
           (long long)ssum, bsum, pc);
    for (int i = 0; i < 16; i++) printf("%u%c", hist[i], i == 15 ? '\n' : ' ');
    int64_t s2 = 0; for (int i = 0; i < N; i++) s2 += sa[i]; printf("narrowed %lld\n", (long long)s2);
    enum { M = 48 };
    static float A[M][M], B[M][M], C[M][M];
    for (int i = 0; i < M; i++) for (int j = 0; j < M; j++) { A[i][j] = (float)((i * 7 + j * 3) % 11) / 3; B[i][j] = (float)((i + 2 * j) % 5 - 2) * 0.75f; }
    for (int i = 0; i < M; i++) for (int j = 0; j < M; j++) { float acc = 0; for (int k = 0; k < M; k++) acc += A[i][k] * B[k][j]; C[i][j] = acc; }
    double tr = 0; for (int i = 0; i < M; i++) tr += C[i][i] * (i + 1);
    printf("matrix %.9g %.9g %.9g\n", tr, C[3][40], C[M - 1][0]);
    qsort(da, N, sizeof da[0], cmpd);
    printf("qsort %.17g %.17g %.17g\n", da[0], da[N / 2], da[N - 1]);
    return 0;
}
