/* Float formatting and parsing (printf %e %g %a %Lf %La, strtod, strtold), libm (sin, cos,
 * exp, log, pow, fma, sqrt, lrint, rint, nearbyint, floor, ceil, trunc, round) under every
 * rounding mode set with fesetround, and the fenv exception flags each operation raises. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static volatile double vd[] = {0.1, -2.5, 3.5, 1e-310, 1e300, -0.0, 0.49999999999999994, 2.5000000000000004,
                               1234.5678, 1e-5, 7.0, -1e10, 0.7853981633974483, 100.25};
#define N (sizeof vd / sizeof vd[0])

static void flags(const char *what) {
    int e = fetestexcept(FE_ALL_EXCEPT);
    printf("%s:%s%s%s%s%s\n", what, e & FE_INVALID ? " invalid" : "", e & FE_DIVBYZERO ? " divbyzero" : "",
           e & FE_OVERFLOW ? " overflow" : "", e & FE_UNDERFLOW ? " underflow" : "", e & FE_INEXACT ? " inexact" : "");
    feclearexcept(FE_ALL_EXCEPT);
}

int main(void) {
    const int modes[] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
    const char *names[] = {"nearest", "down", "up", "zero"};
    for (int m = 0; m < 4; m++) {
        fesetround(modes[m]);
        printf("== %s\n", names[m]);
        for (unsigned i = 0; i < N; i++) {
            double x = vd[i];
            printf("%a %ld %a %a %a %a %a %a\n", rint(x), lrint(x), nearbyint(x), floor(x), ceil(x), trunc(x),
                   round(x), x * 3.0 / 7.0);
            printf("  %.17g %.17g %.17g %.17g\n", sqrt(fabs(x)), fma(x, 1.0 / 3.0, -x), x + 1e-17, x * x);
        }
        volatile double a = 1.0, b = 3.0;
        printf("  div %a  sum %a  cvt %a\n", a / b, a / b + b / 7.0, (double)(float)(a / b));
        printf("  long double %La %La\n", (long double)a / (long double)b, sqrtl(2.0L));
    }
    fesetround(FE_TONEAREST);
    for (unsigned i = 0; i < N; i++) {
        double x = vd[i];
        printf("%.17g %.17g %.17g %.17g %.17g\n", sin(x), cos(x), exp(x / 100), log(fabs(x) + 1), pow(fabs(x), 0.37));
        printf("%e %g %a %.3Lf %La\n", x, x, x, (long double)x, (long double)x * 3);
    }
    const char *in[] = {"0.1", "1e-320", "2.2250738585072011e-308", "0x1.fffffffffffffp1023", "1e400", "-nan",
                        "4.9406564584124654e-324", "123456789012345678901234567890", "0.30000000000000004",
                        "1.00000000000000011102230246251565404236316680908203125"};
    for (int i = 0; i < 10; i++) {
        char *end;
        double d = strtod(in[i], &end);
        long double ld = strtold(in[i], &end);
        float f = strtof(in[i], &end);
        printf("%s -> %a %La %a\n", in[i], d, ld, f);
    }
    feclearexcept(FE_ALL_EXCEPT);
    volatile double z = 0.0, one = 1.0, big = DBL_MAX, tiny = DBL_MIN;
    volatile double r;
    r = one / z; flags("1/0");
    r = z / z; flags("0/0");
    r = big * 2; flags("max*2");
    r = tiny / 3; flags("min/3");
    r = one / 3; flags("1/3");
    r = sqrt(-one); flags("sqrt(-1)");
    r = one + 1; flags("1+1");
    volatile float fz = 0.0f, fo = 1e38f;
    volatile float fr = fo * 10.0f; flags("float overflow");
    fr = fz / fz; flags("float 0/0");
    (void)r; (void)fr;
    return 0;
}
