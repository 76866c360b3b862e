/* Results at the bottom of the normal range, where rounding decides underflow: SSE multiply,
 * divide, add and double-to-single conversion (every rounding mode, FTZ off and on), and x87
 * multiply (every precision and rounding control) and stores to float and double; the results
 * and the flags each operation raises are folded into checksums. Tininess is detected after
 * rounding with an unbounded exponent, so a result that rounds up to the smallest normal may or
 * may not underflow. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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
static uint64_t bits(double d) {
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}
static double num(uint64_t b) {
    double d;
    memcpy(&d, &b, 8);
    return d;
}

int main(void) {
    const unsigned modes[] = {0x0000, 0x2000, 0x4000, 0x6000};
    int ue = 0, minnormal = 0;
    for (int i = 0; i < 40000; i++) {
        // a in [1,2), b ~ 1/a, scaled so that a*b lies near 2^-1022 (and 2^-126 in single).
        double a = 1.0 + (double)(rnd() >> 12) * 0x1p-52;
        uint64_t bb = bits(1.0 / a) + (int64_t)(rnd() % 7) - 3;
        double A = ldexp(a, -511), B = ldexp(num(bb), -511);
        float af = (float)a, bf = 1.0f / af;
        float Af = ldexpf(af, -63), Bf = ldexpf(bf, -63);
        for (int m = 0; m < 4; m++) {
            for (int ftz = 0; ftz < 2; ftz++) {
                unsigned csr = 0x1f80 | modes[m] | (ftz ? 0x8000 : 0);
                _mm_setcsr(csr);
                __m128d p = _mm_mul_sd(_mm_set_sd(A), _mm_set_sd(B));
                __m128d q = _mm_div_sd(_mm_set_sd(A), _mm_set_sd(ldexp(1.0 / num(bb), 511)));
                __m128d r = _mm_add_sd(_mm_set_sd(A * 0x1p-511), _mm_set_sd(-0x1p-1074 * (double)(rnd() % 5)));
                __m128 c = _mm_cvtsd_ss(_mm_setzero_ps(), _mm_set_sd(ldexp(a * num(bb), -126)));
                __m128 f = _mm_mul_ss(_mm_set_ss(Af), _mm_set_ss(Bf));
                unsigned after = _mm_getcsr();
                _mm_setcsr(0x1f80);
                double pr = _mm_cvtsd_f64(p);
                if (pr == 0x1p-1022) minnormal++;
                if (after & 0x10) ue++;
                mix(bits(pr));
                mix(bits(_mm_cvtsd_f64(q)));
                mix(bits(_mm_cvtsd_f64(r)));
                float cf = _mm_cvtss_f32(c), ff = _mm_cvtss_f32(f);
                uint32_t cb, fb;
                memcpy(&cb, &cf, 4);
                memcpy(&fb, &ff, 4);
                mix(cb);
                mix(fb);
                mix(after);
            }
        }
    }
    printf("sse: %d products were the smallest normal, %d operations raised underflow, checksum %016llx\n", minnormal, ue,
           (unsigned long long)h);

    // x87: extended products near 2^-16382 under every precision and rounding control, then
    // stores of values near the bottom of float and double.
    h = 1469598103934665603ull;
    int x87ue = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t m = rnd() | 1ull << 63;
        long double x, y;
        unsigned char bx[16] = {0};
        unsigned short e = 16383 - 8192;
        memcpy(bx, &m, 8);
        memcpy(bx + 8, &e, 2);
        memcpy(&x, bx, sizeof x);
        y = ldexpl(1.0L / ldexpl(x, 8192), -8190);
        for (int k = (int)(rnd() % 7); k > 0; k--) y = nextafterl(y, k & 1 ? 0 : 1);
        for (int pc = 0; pc < 3; pc++) {
            for (int rc = 0; rc < 4; rc++) {
                unsigned short cw = 0x7f | (unsigned short)((pc == 0 ? 0 : pc + 1) << 8) | (unsigned short)(rc << 10);
                long double r;
                float fs;
                double ds;
                unsigned short sw;
                long double near_f = ldexpl(x, 8192 - 126 + (int)(rnd() % 3) - 1);
                long double near_d = ldexpl(x, 8192 - 1022 + (int)(rnd() % 3) - 1);
                __asm__ volatile("fninit\n\tfldcw %4\n\tfldt %5\n\tfldt %6\n\tfmulp\n\tfstpt %0\n\t"
                                 "fldt %7\n\tfstps %1\n\tfldt %8\n\tfstpl %2\n\tfnstsw %3\n\tfninit"
                                 : "=m"(r), "=m"(fs), "=m"(ds), "=m"(sw)
                                 : "m"(cw), "m"(x), "m"(y), "m"(near_f), "m"(near_d));
                unsigned char br[10];
                memcpy(br, &r, 10);
                for (int k = 0; k < 10; k++) mix(br[k]);
                uint32_t fb;
                memcpy(&fb, &fs, 4);
                mix(fb);
                mix(bits(ds));
                mix(sw);
                if (sw & 0x10) x87ue++;
            }
        }
    }
    printf("x87: %d operation groups raised underflow, checksum %016llx\n", x87ue, (unsigned long long)h);
    return 0;
}
