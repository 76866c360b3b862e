/* long double through the x87 unit: printf %La/%Le/%Lf, strtold of hard cases, sqrtl, arithmetic;
 * the x87 state saved and restored (fnsave/frstor and fnstenv/fldenv in 32- and 16-bit layouts),
 * ficom, ffreep, fnop. */
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

    // Save the whole state (the instruction and operand pointers, bytes 12-23 of the 32-bit
    // layout, are not printed: they are addresses), change it, restore it.
    unsigned char save[108], save16[94];
    unsigned short cw = 0x0b7f;
    __asm__ volatile("fninit\n\tfldcw %0\n\tfld1\n\tfldpi\n\tfldl2e\n\tfdiv %%st(1), %%st" ::"m"(cw));
    __asm__ volatile("fnsave %0" : "=m"(save));
    unsigned short sw_after;
    __asm__ volatile("fnstsw %0" : "=m"(sw_after));
    printf("fnsave: cw %02x%02x sw %02x%02x tw %02x%02x; after it sw %04x\n", save[1], save[0], save[5], save[4], save[9], save[8], sw_after);
    for (int r = 0; r < 3; r++) {
        printf("  st(%d) ", r);
        for (int k = 9; k >= 0; k--) printf("%02x", save[28 + 10 * r + k]);
        printf("\n");
    }
    __asm__ volatile("fldz\n\tfldz\n\tfrstor %0" ::"m"(save));
    long double top;
    __asm__ volatile("fstpt %0" : "=m"(top));
    printf("after frstor: st(0) %La\n", top);
    __asm__ volatile("fnsaves %0\n\tfrstors %0" : "=m"(save16));
    printf("16-bit fnsave: cw %02x%02x sw %02x%02x tw %02x%02x st(0) ", save16[1], save16[0], save16[3], save16[2], save16[5], save16[4]);
    for (int k = 9; k >= 0; k--) printf("%02x", save16[14 + k]);
    printf("\n");
    unsigned char env[28];
    __asm__ volatile("fnstenvs %0\n\tfldenvs %0" : "=m"(env));
    printf("16-bit fnstenv: cw %02x%02x sw %02x%02x tw %02x%02x\n", env[1], env[0], env[3], env[2], env[5], env[4]);
    int small = 3, big = 1000;
    unsigned short cc1, cc2, cc3;
    __asm__ volatile("fldpi\n\tficoms %1\n\tfnstsw %0" : "=m"(cc1) : "m"(small));
    __asm__ volatile("ficompl %1\n\tfnstsw %0" : "=m"(cc2) : "m"(big));
    __asm__ volatile("fld1\n\tfnop\n\tffreep %%st(0)\n\tfnstsw %0" : "=m"(cc3));
    printf("ficom: %04x %04x; ffreep: %04x\n", cc1 & 0x4700, cc2 & 0x4700, cc3 & 0x3800);
    return 0;
}
