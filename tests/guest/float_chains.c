/* Chains of dependent SSE operations in straight-line code, on operands drawn from normal
 * numbers, zeros, denormals, infinities, NaNs and numbers whose products, sums and quotients
 * overflow or underflow: scalar and packed, double and single, with conversions between them
 * and to integers. Each chain's results and the MXCSR flags it raised are folded into a
 * checksum, with the precision flag clear beforehand, with it set (the default state most
 * programs run in after their first inexact result), and with FTZ and DAZ set as well. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const double pool[] = {
    1.5, -2.25, 3.0e300, -7.0e-300, 0.0, -0.0, 1e-310, -4.9e-324, INFINITY, -INFINITY, NAN,
    0x1p-1022, 0x1.fffffffffffffp1023, 1.0, 0.1, 12345.678, -1e-20, 2.0, 0x1p-537, 0x1p+600,
    0x1p-511, -0x1.8p-512, 3.0, 0x1p+63, -0x1p+31, 0x1p+340, -0x1.fffffffffffffp+340, 0x1p+341,
    0x1p-340, -0x1p-341, 0x1.8p+680, 0x1p-680, 0x1p+60, -0x1.fffffep+60, 0x1p-61, 0x1.0000000000001p0,
    0x1p+256, -0x1.fffffffffffffp+256, 0x1p+257, 0x1p-256, -0x1p-257, 0x1.8p+512, 0x1p-512, 0x1p-300,
};
#define N (sizeof pool / sizeof pool[0])

static uint64_t s = 88172645463325252ull;
static uint64_t rnd(void) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}
static uint64_t h = 1469598103934665603ull;
static void mix(uint64_t v) {
    h ^= v;
    h *= 1099511628211ull;
}
static void mix_pd(__m128d v) {
    uint64_t b[2];
    memcpy(b, &v, 16);
    mix(b[0]);
    mix(b[1]);
}
static void mix_ps(__m128 v) {
    uint64_t b[2];
    memcpy(b, &v, 16);
    mix(b[0]);
    mix(b[1]);
}

/* One basic block: every operation depends on an earlier one. */
__attribute__((noinline)) static void chain(double a, double b, double c, double d) {
    __m128d A = _mm_set_sd(a), B = _mm_set_sd(b), C = _mm_set_sd(c), D = _mm_set_sd(d);
    __m128d x = _mm_mul_sd(A, B);
    __m128d y = _mm_add_sd(x, C);
    __m128d z = _mm_div_sd(y, D);
    __m128d w = _mm_sub_sd(z, A);
    __m128d q = _mm_sqrt_sd(w, w);
    __m128d m = _mm_mul_sd(q, x);
    __m128 f = _mm_cvtsd_ss(_mm_setzero_ps(), m);
    __m128 g = _mm_mul_ss(f, _mm_cvtsd_ss(_mm_setzero_ps(), B));
    __m128d back = _mm_cvtss_sd(w, g);
    __m128d P = _mm_set_pd(c, a), Q = _mm_set_pd(d, b);
    __m128d pp = _mm_mul_pd(P, Q);
    __m128d ps = _mm_add_pd(pp, P);
    __m128d pd = _mm_div_pd(ps, Q);
    __m128d pr = _mm_sqrt_pd(pd);
    __m128 sp = _mm_set_ps((float)a, (float)b, (float)c, (float)d);
    __m128 sq = _mm_add_ps(_mm_mul_ps(sp, sp), sp);
    int lt = _mm_comilt_sd(z, w) + 2 * _mm_ucomieq_sd(y, x) + 4 * _mm_comigt_sd(back, A);
    long long i = _mm_cvttsd_si64(_mm_set_sd(fmin(fabs(a), 1e15)));
    __m128d fi = _mm_cvtsi64_sd(w, i * 3);
    __m128d last = _mm_add_sd(fi, back);
    mix_pd(x), mix_pd(y), mix_pd(z), mix_pd(w), mix_pd(q), mix_pd(m), mix_pd(back);
    mix_pd(pp), mix_pd(ps), mix_pd(pd), mix_pd(pr), mix_pd(last);
    mix_ps(f), mix_ps(g), mix_ps(sq);
    mix((uint64_t)lt);
}

/* Products of four and their square, a root of a sum of squares, a quotient and the tiny
 * difference of nearly equal numbers: results that overflow or underflow only after several
 * operations, each of which alone stays in range. */
__attribute__((noinline)) static void products(double a, double b, double c, double d) {
    __m128d A = _mm_set_sd(a), B = _mm_set_sd(b), C = _mm_set_sd(c), D = _mm_set_sd(d);
    __m128d ab = _mm_mul_sd(A, B);
    __m128d abc = _mm_mul_sd(ab, C);
    __m128d abcd = _mm_mul_sd(abc, D);
    __m128d sq = _mm_mul_sd(abcd, abcd);
    __m128d s1 = _mm_add_sd(_mm_mul_sd(A, A), _mm_mul_sd(B, B));
    __m128d r = _mm_sqrt_sd(s1, s1);
    __m128d q = _mm_div_sd(abc, r);
    __m128d dq = _mm_sub_sd(q, _mm_mul_sd(q, _mm_set_sd(0x1.0000000000001p0)));
    __m128d e = _mm_mul_sd(dq, abcd);
    __m128d P = _mm_set_pd(b, a), Q = _mm_set_pd(d, c);
    __m128d pq = _mm_mul_pd(_mm_mul_pd(P, Q), _mm_mul_pd(P, P));
    __m128d pdiff = _mm_sub_pd(_mm_div_pd(pq, Q), _mm_mul_pd(P, _mm_mul_pd(P, P)));
    __m128 sp = _mm_set_ps((float)a, (float)b, (float)c, (float)d);
    __m128 s3 = _mm_mul_ps(_mm_mul_ps(sp, sp), sp);
    __m128 sr = _mm_sqrt_ps(_mm_add_ps(_mm_mul_ps(sp, sp), s3));
    mix_pd(ab), mix_pd(abc), mix_pd(abcd), mix_pd(sq), mix_pd(s1), mix_pd(r), mix_pd(q);
    /* Lanes of computed values moved by shuffles, then computed with again. */
    __m128d u = _mm_unpackhi_pd(pq, pdiff), v = _mm_shuffle_pd(pq, _mm_mul_pd(pq, pq), 1);
    __m128d uv = _mm_div_pd(_mm_mul_pd(u, v), _mm_unpacklo_pd(v, u));
    __m128 t = _mm_unpacklo_ps(s3, sr), tt = _mm_mul_ps(_mm_mul_ps(t, t), _mm_movehl_ps(sr, s3));

    mix_pd(dq), mix_pd(e), mix_pd(pq), mix_pd(pdiff), mix_pd(uv);
    mix_ps(s3), mix_ps(sr), mix_ps(tt);
}

/* A lane of a square moved beside a lane of its root: squared again, it overflows where the
 * root's lane alone would not. */
__attribute__((noinline)) static __m128d square_beside_root(double a, double b) {
    __m128d P = _mm_set_pd(b, a);
    __m128d s = _mm_mul_pd(P, P), z = _mm_unpackhi_pd(s, P);
    return _mm_mul_pd(z, z);
}

/* n-body's inner step: differences, a sum of their squares, a branch (sqrt's domain check, a
 * guest block of its own), then the root, a quotient and products of the differences with it,
 * so that what a block found of its results is used in the blocks after it. */
static double acc[4];
__attribute__((noinline)) static void across_blocks(double a, double b, double c, double d) {
    double dx = a - b, dy = c - d, dz = a - d;
    double d2 = dx * dx + dy * dy + dz * dz;
    double mag = c / (d2 * sqrt(d2));
    acc[0] -= dx * b * mag;
    acc[1] -= dy * b * mag;
    if (d2 > a)
        acc[2] += dz * a * mag;
    else
        acc[3] += sqrt(acc[0] * acc[0] + d2) * mag;
}

int main(void) {
    /* Precision flag clear; set; set with FTZ and DAZ (as -ffast-math programs run). */
    const unsigned csr[] = {0x1f80, 0x1fa0, 0x9fe0};
    for (int m = 0; m < 3; m++) {
        for (int i = 0; i < 20000; i++) {
            double a = pool[rnd() % N], b = pool[rnd() % N], c = pool[rnd() % N], d = pool[rnd() % N];
            _mm_setcsr(csr[m]);
            chain(a, b, c, d);
            mix(_mm_getcsr());
            _mm_setcsr(csr[m]);
            products(a, b, c, d);
            mix(_mm_getcsr());
            _mm_setcsr(csr[m]);
            mix_pd(square_beside_root(a, b));
            mix(_mm_getcsr());
            _mm_setcsr(csr[m]);
            across_blocks(a, b, c, d);
            mix(_mm_getcsr());
            for (int k = 0; k < 4; k++) {
                uint64_t bits;
                memcpy(&bits, &acc[k], 8);
                mix(bits);
                if (!isfinite(acc[k]) || (rnd() & 7) == 0)
                    acc[k] = pool[rnd() % N];
            }
        }
        printf("MXCSR %04x: %016llx\n", csr[m], (unsigned long long)h);
    }
    _mm_setcsr(0x1f80);
    return 0;
}
