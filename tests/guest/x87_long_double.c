/* long double through the x87 unit: printf %La/%Le/%Lf, strtold of hard cases, sqrtl, arithmetic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
int main(void) {
    long double a = 1.0L / 3, b = 2.0L, c = -0.0L;
    long double vals[] = {a, b, c, 1e4000L, 1e-4000L, 3.14159265358979323846264338327950288L, 0.1L, 1234567890123456789.0L};
    for (int i = 0; i < 8; i++) {
        long double v = vals[i];
        printf("%La %Lg %.25Le %Lf\n", v, v, v, v);
        printf("  sqrt %La  *3 %La  /7 %La  -1 %La  int %lld\n", sqrtl(fabsl(v)), v * 3, v / 7, v - 1, (long long)v);
    }
    const char *in[] = {"0.1", "1e-4950", "3.36210314311209350626e-4932", "1.18973149535723176502e+4932", "0x1.fffffffffffffffep16383", "123.456e78"};
    for (int i = 0; i < 6; i++) { long double v = strtold(in[i], 0); unsigned char bb[16] = {0}; memcpy(bb, &v, 10);
        printf("strtold %s = ", in[i]); for (int k = 9; k >= 0; k--) printf("%02x", bb[k]); printf(" %Lg\n", v); }
    double d = 0.1; float f = 0.3f;
    printf("%f %e %g %a %.20f\n", d, d * 1e300, f, f, d);
    long double s = 0; for (int i = 1; i < 1000; i++) s += 1.0L / i;
    printf("harmonic %.21Lg\n", s);
    return 0;
}
