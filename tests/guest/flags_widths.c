/* Carry, overflow, sign, zero, parity and adjust flags of add/sub/adc/sbb/inc/dec/neg/cmp at
 * every operand width, captured with pushfq. */
#include <stdint.h>
#include <stdio.h>
#define DEF (0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x800)
#define OP2(name, insn, suf, T, reg)                                                     \
    static uint64_t name(T a, T b, T *out, int cin) {                                    \
        uint64_t fl;                                                                     \
        __asm__ volatile("bt $0, %q3\n\t" insn suf " %2, %0\n\tpushfq\n\tpopq %1"       \
                         : "+" reg(a), "=r"(fl) : reg(b), "r"((uint64_t)cin) : "cc");     \
        *out = a;                                                                        \
        return fl & DEF;                                                                 \
    }
#define WIDTHS(op)                                  \
    OP2(op##8, #op, "b", uint8_t, "q")              \
    OP2(op##16, #op, "w", uint16_t, "r")            \
    OP2(op##32, #op, "l", uint32_t, "r")            \
    OP2(op##64, #op, "q", uint64_t, "r")
WIDTHS(add) WIDTHS(sub) WIDTHS(adc) WIDTHS(sbb) WIDTHS(and) WIDTHS(or) WIDTHS(xor)

#define OP1(name, insn, T, reg)                                                    \
    static uint64_t name(T a, T *out, int cin) {                                   \
        uint64_t fl;                                                               \
        __asm__ volatile("bt $0, %q2\n\t" insn " %0\n\tpushfq\n\tpopq %1"         \
                         : "+" reg(a), "=r"(fl) : "r"((uint64_t)cin) : "cc");      \
        *out = a;                                                                  \
        return fl & DEF;                                                           \
    }
OP1(inc8, "incb", uint8_t, "q") OP1(inc16, "incw", uint16_t, "r") OP1(inc32, "incl", uint32_t, "r")
OP1(inc64, "incq", uint64_t, "r") OP1(dec8, "decb", uint8_t, "q") OP1(dec16, "decw", uint16_t, "r")
OP1(dec32, "decl", uint32_t, "r") OP1(dec64, "decq", uint64_t, "r") OP1(neg8, "negb", uint8_t, "q")
OP1(neg16, "negw", uint16_t, "r") OP1(neg32, "negl", uint32_t, "r") OP1(neg64, "negq", uint64_t, "r")

static const uint64_t vals[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000,
                                0xffffffff, 0x7fffffffffffffffull, 0x8000000000000000ull, 0xffffffffffffffffull,
                                0x123456789abcdef0ull, 0x0f0f0f0f0f0f0f0full};
int main(void) {
    const int n = sizeof vals / sizeof vals[0];
    unsigned long h = 0;
    int lines = 0;
#define RUN2(fn, T)                                                        \
    for (int i = 0; i < n; i++)                                            \
        for (int j = 0; j < n; j++)                                        \
            for (int c = 0; c < 2; c++) {                                  \
                T r;                                                       \
                uint64_t f = fn((T)vals[i], (T)vals[j], &r, c);            \
                h = h * 1000003 ^ (f * 31 + (uint64_t)r);                  \
                if (((i + j) % 5 == 0) && c == 1)                          \
                    printf(#fn "(%llx,%llx,c=%d) = %llx flags %03llx\n",   \
                           (unsigned long long)(T)vals[i],                 \
                           (unsigned long long)(T)vals[j], c,              \
                           (unsigned long long)r, (unsigned long long)f),  \
                        lines++;                                           \
            }
#define RUN1(fn, T)                                                              \
    for (int i = 0; i < n; i++)                                                  \
        for (int c = 0; c < 2; c++) {                                            \
            T r;                                                                 \
            uint64_t f = fn((T)vals[i], &r, c);                                  \
            printf(#fn "(%llx,c=%d) = %llx flags %03llx\n",                      \
                   (unsigned long long)(T)vals[i], c, (unsigned long long)r,     \
                   (unsigned long long)f);                                       \
        }
    RUN2(add8, uint8_t) RUN2(add16, uint16_t) RUN2(add32, uint32_t) RUN2(add64, uint64_t)
    RUN2(sub8, uint8_t) RUN2(sub16, uint16_t) RUN2(sub32, uint32_t) RUN2(sub64, uint64_t)
    RUN2(adc8, uint8_t) RUN2(adc16, uint16_t) RUN2(adc32, uint32_t) RUN2(adc64, uint64_t)
    RUN2(sbb8, uint8_t) RUN2(sbb16, uint16_t) RUN2(sbb32, uint32_t) RUN2(sbb64, uint64_t)
    RUN2(and8, uint8_t) RUN2(or16, uint16_t) RUN2(xor32, uint32_t) RUN2(and64, uint64_t)
    RUN1(inc8, uint8_t) RUN1(inc16, uint16_t) RUN1(inc32, uint32_t) RUN1(inc64, uint64_t)
    RUN1(dec8, uint8_t) RUN1(dec16, uint16_t) RUN1(dec32, uint32_t) RUN1(dec64, uint64_t)
    RUN1(neg8, uint8_t) RUN1(neg16, uint16_t) RUN1(neg32, uint32_t) RUN1(neg64, uint64_t)
    printf("%d sampled lines, hash of all results %lx\n", lines, h);
    return 0;
}
