/* mul/imul/div/idiv at every width, including the 128-bit forms and __int128 arithmetic. */
#include <stdint.h>
#include <stdio.h>
static const uint64_t vals[] = {1, 2, 3, 7, 10, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x12345, 0x7fffffff, 0x80000000,
                                0xffffffff, 0x100000001ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
                                0xfffffffffffffffbull, 0xdeadbeefcafebabeull};
int main(void) {
    int n = sizeof vals / sizeof vals[0];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            uint64_t a = vals[i], b = vals[j];
            unsigned __int128 p = (unsigned __int128)a * b;
            __int128 sp = (__int128)(int64_t)a * (int64_t)b;
            uint64_t lo, hi, fl;
            __asm__("mulq %3\n\tpushfq\n\tpopq %2" : "=a"(lo), "=d"(hi), "=r"(fl) : "r"(b), "a"(a) : "cc");
            uint64_t ilo, ihi, ifl;
            __asm__("imulq %3\n\tpushfq\n\tpopq %2" : "=a"(ilo), "=d"(ihi), "=r"(ifl) : "r"(b), "a"(a) : "cc");
            uint32_t l32, h32;
            __asm__("mull %3" : "=a"(l32), "=d"(h32) : "a"((uint32_t)a), "r"((uint32_t)b) : "cc");
            int32_t i3 = (int32_t)a * (int32_t)b;
            int16_t i16 = (int16_t)a * (int16_t)b;
            printf("%llx*%llx: %016llx%016llx cf%d | s %016llx%016llx of%d | 32: %08x%08x | %d %d\n",
                   (unsigned long long)a, (unsigned long long)b, (unsigned long long)(p >> 64),
                   (unsigned long long)p, (int)(fl & 1), (unsigned long long)ihi, (unsigned long long)ilo,
                   (int)((ifl >> 11) & 1), h32, l32, i3, i16);
            if (p != ((unsigned __int128)hi << 64 | lo) || (unsigned __int128)sp != ((unsigned __int128)ihi << 64 | ilo))
                printf("MISMATCH\n");
            printf("  div: %llu %llu | %lld %lld | %u %u | %d %d\n", (unsigned long long)(a / b),
                   (unsigned long long)(a % b), (long long)((int64_t)a / ((int64_t)b == -1 ? 1 : (int64_t)b)),
                   (long long)((int64_t)a % ((int64_t)b == -1 ? 1 : (int64_t)b)), (uint32_t)a / ((uint32_t)b ? (uint32_t)b : 1),
                   (uint32_t)a % ((uint32_t)b ? (uint32_t)b : 1), (int8_t)a / ((int8_t)b ? (int8_t)b : 1),
                   (int16_t)a % ((int16_t)b ? (int16_t)b : 1));
            unsigned __int128 big = p * 3 + a;
            if (b) printf("  u128 / b = %llx, %% b = %llx\n", (unsigned long long)(big / b), (unsigned long long)(big % b));
        }
    uint64_t q, r;
    __asm__("divq %4" : "=a"(q), "=d"(r) : "a"(0x0123456789abcdefull), "d"(0x42ull), "r"(0x1000000000ull) : "cc");
    printf("128/64 divq: q=%llx r=%llx\n", (unsigned long long)q, (unsigned long long)r);
    int64_t sq, sr;
    __asm__("idivq %4" : "=a"(sq), "=d"(sr) : "a"(-1000000000000ll), "d"(-1ll), "r"(7ll) : "cc");
    printf("128/64 idivq: q=%lld r=%lld\n", (long long)sq, (long long)sr);
    uint8_t q8, r8;
    uint16_t ax = 1000;
    __asm__("divb %2\n\tmovb %%ah, %1" : "+a"(ax), "=q"(r8) : "q"((uint8_t)7) : "cc");
    q8 = ax & 0xff;
    printf("divb: %u %u\n", q8, r8);
    return 0;
}
