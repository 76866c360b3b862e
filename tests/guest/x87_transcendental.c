/* x87 transcendental instructions (fsin, fcos, fsincos, fptan, fpatan, f2xm1, fyl2x, fyl2xp1)
 * on ordinary and edge arguments, with the status word's exception and C2 bits; plus libm long
 * double functions built on them. The results are printed rounded to double (%a) or to 16
 * digits: the architecture defines them only to within about an ulp of the 80-bit result, and
 * CPUs differ there (Kiln rounds correctly; AMD Zen's fcos(-0.25) agrees, an Intel Xeon's is
 * one unit in the last place below). */
#include <math.h>
#include <stdio.h>

static unsigned short sw(void) { unsigned short s; __asm__ volatile("fnstsw %0" : "=m"(s)); return s; }
static void clr(void) { __asm__ volatile("fnclex"); }
#define UN(name, insn)                                                                             \
    static long double name(long double x) { __asm__ volatile(insn : "+t"(x)); return x; }
UN(xsin, "fsin")
UN(xcos, "fcos")
UN(xf2xm1, "f2xm1")
static long double xtan(long double x) { long double one; __asm__ volatile("fptan" : "+t"(x), "=u"(one)); return x + 0 * one; }
static long double xatan(long double y, long double x) { long double r; __asm__ volatile("fpatan" : "=t"(r) : "0"(x), "u"(y) : "st(1)"); return r; }
static long double xyl2x(long double y, long double x) { long double r; __asm__ volatile("fyl2x" : "=t"(r) : "0"(x), "u"(y) : "st(1)"); return r; }
static long double xyl2xp1(long double y, long double x) { long double r; __asm__ volatile("fyl2xp1" : "=t"(r) : "0"(x), "u"(y) : "st(1)"); return r; }

int main(void) {
    volatile long double args[] = {0.5L, 1.0L, -0.25L, 3.0L, 1e-5L, 0.785398163397448309615L, 2.0L, -7.5L,
                                   100.0L, 12345.678L, 1e-300L, 0.1L};
    int n = sizeof args / sizeof args[0];
    for (int i = 0; i < n; i++) {
        long double x = args[i];
        clr(); long double s = xsin(x); unsigned short w1 = sw() & 0x47f;
        clr(); long double c = xcos(x); unsigned short w2 = sw() & 0x47f;
        clr(); long double t = xtan(x); unsigned short w3 = sw() & 0x47f;
        printf("x=%La sin %a cos %a tan %a sw %x %x %x\n", x, (double)s, (double)c, (double)t, w1, w2, w3);
        long double sc, cc;
        __asm__ volatile("fsincos" : "=t"(cc), "=u"(sc) : "0"(x));
        printf("  sincos %a %a\n", (double)sc, (double)cc);
        clr(); long double a = xatan(x, 1.5L); long double a2 = xatan(-1.0L, x); unsigned short w4 = sw() & 0x47f;
        printf("  atan %.16Lg %.16Lg sw %x\n", a, a2, w4);
        if (fabsl(x) <= 1) { clr(); printf("  f2xm1 %a sw %x\n", (double)xf2xm1(x), sw() & 0x47f); }
        clr(); long double l = xyl2x(1.0L, fabsl(x)); unsigned short w5 = sw() & 0x47f;
        printf("  log2 %.16Lg sw %x  3*log2 %.16Lg\n", l, w5, xyl2x(3.0L, fabsl(x)));
        if (fabsl(x) < 0.29L) printf("  log2(1+x) %.16Lg\n", xyl2xp1(1.0L, x));
    }
    clr(); long double big = xsin(1e30L); printf("sin(1e30): C2 %d value %La\n", (sw() >> 10) & 1, big);
    clr(); long double z = xyl2x(1.0L, 0.0L); printf("log2(0) %La sw %x\n", z, sw() & 0x47f);
    clr(); z = xyl2x(1.0L, -1.0L); printf("log2(-1) %La sw %x\n", z, sw() & 0x47f);
    clr(); z = xatan(0.0L, -0.0L); printf("atan2(0,-0) %La\n", z);
    printf("libm: %a %.16Lg %.16Lg %a\n", (double)sinl(0.3L), atan2l(2.0L, -3.0L), log2l(10.0L), (double)exp2l(0.5L));
    return 0;
}
