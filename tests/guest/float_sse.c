/* SSE scalar and packed floating point against the real CPU: arithmetic on special values
 * (NaN payloads, infinities, denormals, signed zeros) in every rounding mode, exception flags,
 * DAZ/FTZ, conversions, comparisons, and printf/strtod of doubles. */
#include <emmintrin.h>
#include <fenv.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static uint64_t bits(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }
static double fromb(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }
static uint32_t fbits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }
static float ffromb(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static const uint64_t dv[] = {0, 0x8000000000000000ull, 0x3ff0000000000000ull, 0xbff0000000000000ull,
    0x4008000000000000ull, 0x3fb999999999999aull, 0x7ff0000000000000ull, 0xfff0000000000000ull,
    0x7ff8000000000000ull, 0x7ff8000000000123ull, 0xfff4000000000456ull, 0x7ff0000000000789ull,
    0x0000000000000001ull, 0x000fffffffffffffull, 0x0010000000000000ull, 0x7fefffffffffffffull,
    0x43e0000000000000ull, 0xc3e0000000000001ull, 0x41dfffffffc00000ull, 0x3fe0000000000000ull,
    0x400921fb54442d18ull, 0x3e7ad7f29abcaf48ull};
#define N (sizeof dv / sizeof dv[0])
static unsigned flags(void) { return _mm_getcsr() & 0x3f; }
int main(void) {
    const int modes[] = {0x0000, 0x2000, 0x4000, 0x6000};
    unsigned long h = 0;
    for (int mi = 0; mi < 4; mi++) {
        for (int daz = 0; daz < 4; daz++) {
            _mm_setcsr(0x1f80 | modes[mi] | (daz & 1 ? 0x40 : 0) | (daz & 2 ? 0x8000 : 0));
            for (unsigned i = 0; i < N; i++)
                for (unsigned j = 0; j < N; j++) {
                    __m128d a = _mm_set_sd(fromb(dv[i])), b = _mm_set_sd(fromb(dv[j]));
                    uint64_t r[8]; unsigned f[8];
                    _mm_setcsr(_mm_getcsr() & ~0x3f); r[0] = bits(_mm_cvtsd_f64(_mm_add_sd(a, b))); f[0] = flags();
                    _mm_setcsr(_mm_getcsr() & ~0x3f); r[1] = bits(_mm_cvtsd_f64(_mm_sub_sd(a, b))); f[1] = flags();
                    _mm_setcsr(_mm_getcsr() & ~0x3f); r[2] = bits(_mm_cvtsd_f64(_mm_mul_sd(a, b))); f[2] = flags();
                    _mm_setcsr(_mm_getcsr() & ~0x3f); r[3] = bits(_mm_cvtsd_f64(_mm_div_sd(a, b))); f[3] = flags();
                    _mm_setcsr(_mm_getcsr() & ~0x3f); r[4] = bits(_mm_cvtsd_f64(_mm_min_sd(a, b))); f[4] = flags();
                    _mm_setcsr(_mm_getcsr() & ~0x3f); r[5] = bits(_mm_cvtsd_f64(_mm_max_sd(a, b))); f[5] = flags();
                    _mm_setcsr(_mm_getcsr() & ~0x3f); r[6] = bits(_mm_cvtsd_f64(_mm_sqrt_sd(a, b))); f[6] = flags();
                    _mm_setcsr(_mm_getcsr() & ~0x3f); r[7] = (uint64_t)_mm_comilt_sd(a, b) << 8 | _mm_ucomieq_sd(a, b) << 4 | (uint64_t)_mm_comige_sd(a, b); f[7] = flags();
                    for (int k = 0; k < 8; k++) h = h * 1000003 + r[k] * 31 + f[k];
                    if (i % 4 == 0 && j % 3 == 0 && daz == 0)
                        printf("m%d %016llx %016llx: %016llx/%02x %016llx/%02x %016llx/%02x %016llx/%02x %016llx/%02x\n", mi,
                               (unsigned long long)dv[i], (unsigned long long)dv[j], (unsigned long long)r[0], f[0],
                               (unsigned long long)r[2], f[2], (unsigned long long)r[3], f[3], (unsigned long long)r[4], f[4],
                               (unsigned long long)r[6], f[6]);
                    float fa = (float)fromb(dv[i]), fb = (float)fromb(dv[j]);
                    __m128 sa = _mm_set_ss(fa), sb = _mm_set_ss(fb);
                    _mm_setcsr(_mm_getcsr() & ~0x3f);
                    uint32_t s0 = fbits(_mm_cvtss_f32(_mm_add_ss(sa, sb))), s1 = fbits(_mm_cvtss_f32(_mm_div_ss(sa, sb)));
                    uint32_t s2 = fbits(_mm_cvtss_f32(_mm_sqrt_ss(sb)));
                    h = h * 1000003 + s0 * 7 + s1 * 13 + s2 + flags();
                    _mm_setcsr(_mm_getcsr() & ~0x3f);
                    __m128d c = _mm_cmplt_sd(a, b), c2 = _mm_cmpunord_sd(a, b), c3 = _mm_cmpnle_sd(a, b);
                    h = h * 31 + bits(_mm_cvtsd_f64(c)) + 3 * bits(_mm_cvtsd_f64(c2)) + 5 * bits(_mm_cvtsd_f64(c3)) + flags();
                }
            for (unsigned i = 0; i < N; i++) {
                double d = fromb(dv[i]);
                _mm_setcsr(_mm_getcsr() & ~0x3f);
                long long t = _mm_cvttsd_si64(_mm_set_sd(d)), r = _mm_cvtsd_si64(_mm_set_sd(d));
                int t32 = _mm_cvttsd_si32(_mm_set_sd(d)), r32 = _mm_cvtsd_si32(_mm_set_sd(d));
                float f = _mm_cvtss_f32(_mm_cvtsd_ss(_mm_setzero_ps(), _mm_set_sd(d)));
                double back = _mm_cvtsd_f64(_mm_cvtss_sd(_mm_setzero_pd(), _mm_set_ss(f)));
                unsigned fl = flags();
                printf("cvt m%d daz%d %016llx: %lld %lld %d %d %08x %016llx flags %02x\n", mi, daz, (unsigned long long)dv[i], t, r, t32, r32,
                       fbits(f), (unsigned long long)bits(back), fl);
                _mm_setcsr(_mm_getcsr() & ~0x3f);
                double fi = _mm_cvtsd_f64(_mm_cvtsi64_sd(_mm_setzero_pd(), (long long)dv[i] >> (i % 13)));
                float ff = _mm_cvtss_f32(_mm_cvtsi32_ss(_mm_setzero_ps(), (int)(dv[i] >> 17)));
                printf("  from int: %016llx %08x flags %02x\n", (unsigned long long)bits(fi), fbits(ff), flags());
            }
        }
    }
    _mm_setcsr(0x1f80);
    __m128d p = _mm_set_pd(1.5, -2.25), q = _mm_set_pd(1e308, 3.0);
    __m128d pm = _mm_mul_pd(p, q), pd = _mm_div_pd(p, q), ps = _mm_sqrt_pd(q);
    printf("packed %016llx %016llx %016llx %016llx %016llx\n", (unsigned long long)bits(_mm_cvtsd_f64(pm)),
           (unsigned long long)bits(_mm_cvtsd_f64(_mm_unpackhi_pd(pm, pm))), (unsigned long long)bits(_mm_cvtsd_f64(pd)),
           (unsigned long long)bits(_mm_cvtsd_f64(_mm_unpackhi_pd(pd, pd))), (unsigned long long)bits(_mm_cvtsd_f64(ps)));
    __m128 f4 = _mm_set_ps(1.0f, -0.0f, 3.5f, 1e-40f), g4 = _mm_set_ps(3.0f, 2.0f, -1.0f, 1e30f);
    __m128 fr = _mm_add_ps(_mm_mul_ps(f4, g4), _mm_max_ps(f4, g4));
    __m128i cv = _mm_cvtps_epi32(_mm_mul_ps(fr, _mm_set1_ps(1000.0f)));
    int out[4]; memcpy(out, &cv, 16);
    printf("ps %d %d %d %d\n", out[0], out[1], out[2], out[3]);
    __m128d dd = _mm_cvtepi32_pd(_mm_set_epi32(0, 0, -7, 123456789));
    __m128 fd = _mm_cvtpd_ps(dd);
    __m128d back = _mm_cvtps_pd(fd);
    printf("cvt packed %016llx %08x %016llx\n", (unsigned long long)bits(_mm_cvtsd_f64(dd)), fbits(_mm_cvtss_f32(fd)),
           (unsigned long long)bits(_mm_cvtsd_f64(_mm_unpackhi_pd(back, back))));
    printf("hash %lx\n", h);
    double vals[] = {0.1, 1.0 / 3, 2.5e-310, 6.02214076e23, -0.0, 1e300 * 10, 123456.789, 5e-324};
    for (int i = 0; i < 8; i++) printf("%.17g %e %f %a %g\n", vals[i], vals[i], vals[i], vals[i], vals[i]);
    const char *in[] = {"3.14159", "1e-320", "0x1.8p3", "inf", "-nan", "2.2250738585072011e-308", "1e400"};
    for (int i = 0; i < 7; i++) printf("strtod %s = %016llx\n", in[i], (unsigned long long)bits(strtod(in[i], 0)));
    const int rm[] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
    for (int i = 0; i < 4; i++) {
        fesetround(rm[i]);
        feclearexcept(FE_ALL_EXCEPT);
        volatile double x = 1.0, y = 3.0;
        double z = x / y;
        volatile double big = 1e308;
        double o = big * 10;
        printf("round %d: 1/3 = %016llx, 1e308*10 = %016llx, except %x\n", i, (unsigned long long)bits(z),
               (unsigned long long)bits(o), fetestexcept(FE_ALL_EXCEPT));
    }
    return 0;
}
