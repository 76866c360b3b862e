/* fbld and fbstp: packed BCD loads and stores, rounding in every x87 rounding mode, negative
 * values, zero and negative zero, and out-of-range values (the BCD indefinite, invalid flag). */
#include <stdio.h>
#include <string.h>

static void show(const unsigned char *b) {
    for (int i = 9; i >= 0; i--) printf("%02x", b[i]);
}

int main(void) {
    long double vals[] = {0.0L, -0.0L, 1.0L, -1.0L, 2.5L, -2.5L, 3.5L, 123456789012345678.0L, -999999999999999999.0L,
                          1e18L, -1e19L, 0.4999L, 987654.321L, 1e-30L};
    unsigned short modes[] = {0x037f, 0x077f, 0x0b7f, 0x0f7f};
    for (int m = 0; m < 4; m++) {
        __asm__ volatile("fldcw %0" : : "m"(modes[m]));
        for (unsigned i = 0; i < sizeof vals / sizeof vals[0]; i++) {
            unsigned char b[10];
            memset(b, 0x11, 10);
            unsigned short sw;
            __asm__ volatile("fnclex");
            __asm__ volatile("fbstp %0" : "=m"(b) : "t"(vals[i]) : "st");
            __asm__ volatile("fnstsw %0" : "=m"(sw));
            long double back;
            __asm__ volatile("fbld %1" : "=t"(back) : "m"(b));
            printf("mode %d: %Lg -> ", m, vals[i]);
            show(b);
            printf(" sw %02x -> %Lg\n", sw & 0x3f, back);
        }
    }
    return 0;
}
