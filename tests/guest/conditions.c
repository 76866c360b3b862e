/* Every jcc/setcc/cmovcc condition after cmp and test at each width (signed and unsigned). */
#include <stdint.h>
#include <stdio.h>
#define CONDS(X) X(o) X(no) X(b) X(ae) X(e) X(ne) X(be) X(a) X(s) X(ns) X(p) X(np) X(l) X(ge) X(le) X(g)
#define SET(cc) \
    { uint8_t r; __asm__ volatile("cmp" SUF " %2, %1\n\tset" #cc " %0" : "=q"(r) : REG(a), REG(b) : "cc"); bits = bits << 1 | r; }
static const int64_t vals[] = {0, 1, -1, 2, -2, 127, -128, 255, 32767, -32768, 0x7fffffff, -0x7fffffff - 1,
                               0x7fffffffffffffffll, -0x7fffffffffffffffll - 1, 0x100, 0x80000000ll};
int main(void) {
    int n = sizeof vals / sizeof vals[0];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            unsigned long bits = 0;
            {
                int8_t a = vals[i], b = vals[j];
#define SUF "b"
#define REG(x) "q"(x)
                CONDS(SET)
#undef SUF
#undef REG
            }
            {
                int16_t a = vals[i], b = vals[j];
#define SUF "w"
#define REG(x) "r"(x)
                CONDS(SET)
#undef SUF
            }
            {
                int32_t a = vals[i], b = vals[j];
#define SUF "l"
                CONDS(SET)
#undef SUF
            }
            {
                int64_t a = vals[i], b = vals[j];
#define SUF "q"
                CONDS(SET)
#undef SUF
            }
            int64_t a = vals[i], b = vals[j], r = 0;
            __asm__ volatile("test %1, %2\n\tcmovs %1, %0" : "+r"(r) : "r"(a), "r"(b) : "cc");
            printf("%lld ? %lld: %016lx cmovs %lld\n", (long long)a, (long long)b, bits, (long long)r);
        }
    return 0;
}
