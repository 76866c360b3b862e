/* Arbitrary-precision factorial and powers with add-with-carry chains. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#define LIMBS 200
static void mul_small(uint32_t *a, uint32_t m) {
    uint64_t carry = 0;
    for (int i = 0; i < LIMBS; i++) { uint64_t t = (uint64_t)a[i] * m + carry; a[i] = (uint32_t)t; carry = t >> 32; }
}
static uint32_t div_small(uint32_t *a, uint32_t d) {
    uint64_t rem = 0;
    for (int i = LIMBS - 1; i >= 0; i--) { uint64_t t = rem << 32 | a[i]; a[i] = (uint32_t)(t / d); rem = t % d; }
    return (uint32_t)rem;
}
static int is_zero(const uint32_t *a) { for (int i = 0; i < LIMBS; i++) if (a[i]) return 0; return 1; }
static void print(const uint32_t *x) {
    uint32_t a[LIMBS]; memcpy(a, x, sizeof a);
    char digits[LIMBS * 10 + 1]; int n = 0;
    do { uint32_t r = div_small(a, 1000000000); for (int k = 0; k < 9; k++) { digits[n++] = (char)('0' + r % 10); r /= 10; } } while (!is_zero(a));
    while (n > 1 && digits[n - 1] == '0') n--;
    for (int i = n - 1; i >= 0; i--) putchar(digits[i]);
    putchar('\n');
}
int main(void) {
    uint32_t f[LIMBS] = {1};
    for (uint32_t i = 2; i <= 300; i++) mul_small(f, i);
    printf("300! = "); print(f);
    uint32_t p[LIMBS] = {1};
    for (int i = 0; i < 1000; i++) mul_small(p, 3);
    printf("3^1000 = "); print(p);
    unsigned __int128 x = 1;
    for (int i = 0; i < 40; i++) x = x * 7 + (x >> 3);
    printf("u128 chain %016llx%016llx\n", (unsigned long long)(x >> 64), (unsigned long long)x);
    return 0;
}
