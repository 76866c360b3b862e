/* Shifts and rotates by 0, 1, in-range and >= width counts, immediate and in CL, with flags. */
#include <stdint.h>
#include <stdio.h>
#define SH(name, insn, T, reg, mask)                                                                 \
    static void name(T v, uint8_t c) {                                                             \
        uint64_t fl = 0x8d5, fl_in = 0x8d5;                                                        \
        T r = v;                                                                                   \
        __asm__ volatile("pushq %2\n\tpopfq\n\t" insn " %%cl, %0\n\tpushfq\n\tpopq %1"             \
                         : "+" reg(r), "=r"(fl) : "r"(fl_in), "c"(c) : "cc");                       \
        unsigned cm = c & (sizeof(T) == 8 ? 63 : 31);                                              \
        uint64_t keep = cm == 0 ? 0x8d5 : cm == 1 ? mask : (mask & ~0x800ull);                    \
        printf("%-5s %16llx by %2u -> %16llx flags %03llx\n", insn, (unsigned long long)v, c,      \
               (unsigned long long)r, (unsigned long long)(fl & keep));                            \
    }
#define ALL(T, s, reg)                                          \
    SH(shl##s, "shl" #s, T, reg, 0x8c5) SH(shr##s, "shr" #s, T, reg, 0x8c5) \
    SH(sar##s, "sar" #s, T, reg, 0x8c5) SH(rol##s, "rol" #s, T, reg, 0x801) \
    SH(ror##s, "ror" #s, T, reg, 0x801)
ALL(uint8_t, b, "q") ALL(uint16_t, w, "r") ALL(uint32_t, l, "r") ALL(uint64_t, q, "r")
int main(void) {
    static const uint64_t vals[] = {0, 1, 0x80, 0x81, 0x8001, 0x80000001, 0x8000000000000001ull, 0xf0f0f0f0f0f0f0f0ull,
                                    0x123456789abcdef0ull};
    static const uint8_t counts[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255};
    for (unsigned i = 0; i < sizeof vals / sizeof vals[0]; i++)
        for (unsigned j = 0; j < sizeof counts; j++) {
            uint64_t v = vals[i];
            uint8_t c = counts[j];
            if (c < 8) { shlb(v, c); shrb(v, c); sarb(v, c); rolb(v, c); rorb(v, c); }
            if (c < 16) { shlw(v, c); shrw(v, c); sarw(v, c); rolw(v, c); rorw(v, c); }
            shll(v, c); shrl(v, c); sarl(v, c); roll(v, c); rorl(v, c);
            shlq(v, c); shrq(v, c); sarq(v, c); rolq(v, c); rorq(v, c);
        }
    /* C-level shifts by variable amounts, as compilers emit them. */
    volatile unsigned amt = 0;
    unsigned long long acc = 0;
    for (unsigned k = 0; k < 64; k++) {
        amt = k;
        acc += (0xdeadbeefcafebabeull >> amt) ^ ((uint64_t)0x1234567 << amt) ^ (uint64_t)((int64_t)-12345678 >> amt);
        acc += (uint32_t)(0x87654321u >> (amt & 31)) + (uint32_t)((int32_t)0x87654321 >> (amt & 31));
    }
    printf("variable shift accumulator %llx\n", acc);
    return 0;
}
