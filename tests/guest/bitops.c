/* Bit scans, popcount, byte swaps, bt/bts/btr/btc, shld/shrd, and compiler bit idioms. */
#include <stdint.h>
#include <stdio.h>
int main(void) {
    static const uint64_t vals[] = {1, 2, 3, 0x80, 0x8000, 0x80000000, 0x8000000000000000ull, 0xf0f0f0f0f0f0f0f0ull,
                                    0x00ff00ff00ff00ffull, 0x123456789abcdef0ull, 0xffffffffffffffffull, 0x10000};
    for (unsigned i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint64_t v = vals[i];
        uint64_t bsf, bsr, z;
        __asm__("bsfq %1, %0" : "=r"(bsf) : "r"(v) : "cc");
        __asm__("bsrq %1, %0" : "=r"(bsr) : "r"(v) : "cc");
        __asm__("xor %%eax, %%eax\n\tbsfq %1, %%rax\n\tsetz %%al\n\tmovzbl %%al, %%eax" : "=a"(z) : "r"(v) : "cc");
        printf("%016llx: ctz %d clz %d pop %d parity %d bsf %llu bsr %llu zf %llu bswap %016llx %08x %04x\n",
               (unsigned long long)v, __builtin_ctzll(v), __builtin_clzll(v), __builtin_popcountll(v),
               __builtin_parityll(v), (unsigned long long)bsf, (unsigned long long)bsr, (unsigned long long)z,
               (unsigned long long)__builtin_bswap64(v), __builtin_bswap32((uint32_t)v), __builtin_bswap16((uint16_t)v));
        for (int bit = 0; bit < 64; bit += 13) {
            uint64_t a = v, b = v, c = v;
            uint8_t cf1, cf2, cf3, cf4;
            __asm__("btq %2, %1\n\tsetc %0" : "=q"(cf1) : "r"(v), "r"((uint64_t)bit) : "cc");
            __asm__("btsq %2, %0\n\tsetc %1" : "+r"(a), "=q"(cf2) : "r"((uint64_t)bit) : "cc");
            __asm__("btrq %2, %0\n\tsetc %1" : "+r"(b), "=q"(cf3) : "r"((uint64_t)bit) : "cc");
            __asm__("btcq $37, %0\n\tsetc %1" : "+r"(c), "=q"(cf4) : : "cc");
            printf("  bit %2d: bt %d bts %016llx/%d btr %016llx/%d btc37 %016llx/%d\n", bit, cf1, (unsigned long long)a,
                   cf2, (unsigned long long)b, cf3, (unsigned long long)c, cf4);
        }
        uint64_t hi = v, lo = ~v;
        __asm__("shldq $12, %1, %0" : "+r"(hi) : "r"(lo) : "cc");
        uint64_t h2 = v;
        __asm__("shrdq %%cl, %1, %0" : "+r"(h2) : "r"(lo), "c"(19) : "cc");
        uint32_t h3 = (uint32_t)v;
        __asm__("shldl $7, %1, %0" : "+r"(h3) : "r"((uint32_t)(v >> 32)) : "cc");
        printf("  shld %016llx shrd %016llx shld32 %08x\n", (unsigned long long)hi, (unsigned long long)h2, h3);
    }
    uint64_t bitmap[4] = {0};
    for (int k = 0; k < 256; k += 11) __asm__("btsq %1, %0" : "+m"(bitmap[0]) : "r"((uint64_t)k) : "cc", "memory");
    printf("memory bitmap via bts: %016llx %016llx %016llx %016llx\n", (unsigned long long)bitmap[0],
           (unsigned long long)bitmap[1], (unsigned long long)bitmap[2], (unsigned long long)bitmap[3]);
    return 0;
}
