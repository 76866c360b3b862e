// MMX registers: MMX arithmetic, the MMX forms of SSE, SSE2 and SSSE3, conversions between MMX
// and XMM registers, and how MMX and x87 share their registers (stack top, tags, EMMS).
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <emmintrin.h>

static uint64_t state = 0x243f6a8885a308d3ull;
static uint64_t next(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static uint64_t hash = 1469598103934665603ull;
static void mix(uint64_t v) {
    for (int i = 0; i < 8; i++) {
        hash ^= (v >> (8 * i)) & 0xff;
        hash *= 1099511628211ull;
    }
}

// One instruction on random operands, the source alternately a register and memory.
#define OP2(insn)                                                                                \
    do {                                                                                         \
        uint64_t acc = 0;                                                                        \
        for (int i = 0; i < 2000; i++) {                                                         \
            uint64_t r = next(), b = i % 7 == 0 ? next() & 0x8080808080808080ull : next();        \
            if (i % 5 == 0) b = r;                                                               \
            if (i & 1)                                                                           \
                __asm__(insn " %1, %0" : "+y"(r) : "y"(b));                                      \
            else                                                                                 \
                __asm__(insn " %1, %0" : "+y"(r) : "m"(b));                                      \
            mix(r);                                                                              \
            acc += r;                                                                            \
        }                                                                                        \
        __asm__ volatile("emms");                                                                \
        printf("%-16s %016llx\n", insn, (unsigned long long)acc);                                \
    } while (0)

// 500 random cases of one statement over r (the destination) and b.
#define LOOP(name, stmt)                                                                         \
    do {                                                                                         \
        uint64_t acc = 0;                                                                        \
        for (int i = 0; i < 500; i++) {                                                          \
            uint64_t r = next(), b = next();                                                     \
            (void)b;                                                                             \
            stmt;                                                                                \
            mix(r);                                                                              \
            acc += r;                                                                            \
        }                                                                                        \
        __asm__ volatile("emms");                                                                \
        printf("%-16s %016llx\n", name, (unsigned long long)acc);                                \
    } while (0)

// A shift by an immediate; a shuffle or align with an immediate.
#define OPS(insn, imm) LOOP(#insn " " #imm, __asm__(#insn " $" #imm ", %0" : "+y"(r)))
#define OPI(insn, imm) LOOP(#insn " " #imm, __asm__(#insn " $" #imm ", %1, %0" : "+y"(r) : "ym"(b)))

static unsigned short fpu_sw(void) {
    unsigned short s;
    __asm__ volatile("fnstsw %0" : "=m"(s));
    return s;
}

static unsigned short fpu_tags(void) {
    unsigned int env[7];
    __asm__ volatile("fnstenv %0\n\tfldenv %0" : "=m"(env));
    return env[2] & 0xffff;
}

int main(void) {
    OP2("paddb");
    OP2("paddw");
    OP2("paddd");
    OP2("paddq");
    OP2("psubb");
    OP2("psubw");
    OP2("psubd");
    OP2("psubq");
    OP2("paddsb");
    OP2("paddsw");
    OP2("psubsb");
    OP2("psubsw");
    OP2("paddusb");
    OP2("paddusw");
    OP2("psubusb");
    OP2("psubusw");
    OP2("pmullw");
    OP2("pmulhw");
    OP2("pmulhuw");
    OP2("pmaddwd");
    OP2("pmuludq");
    OP2("pcmpeqb");
    OP2("pcmpeqw");
    OP2("pcmpeqd");
    OP2("pcmpgtb");
    OP2("pcmpgtw");
    OP2("pcmpgtd");
    OP2("packsswb");
    OP2("packssdw");
    OP2("packuswb");
    OP2("punpcklbw");
    OP2("punpcklwd");
    OP2("punpckldq");
    OP2("punpckhbw");
    OP2("punpckhwd");
    OP2("punpckhdq");
    OP2("pand");
    OP2("pandn");
    OP2("por");
    OP2("pxor");
    OP2("psllw");
    OP2("pslld");
    OP2("psllq");
    OP2("psrlw");
    OP2("psrld");
    OP2("psrlq");
    OP2("psraw");
    OP2("psrad");
    OP2("pavgb");
    OP2("pavgw");
    OP2("pmaxsw");
    OP2("pmaxub");
    OP2("pminsw");
    OP2("pminub");
    OP2("psadbw");
    OP2("pshufb");
    OP2("phaddw");
    OP2("phaddd");
    OP2("phaddsw");
    OP2("phsubw");
    OP2("phsubd");
    OP2("phsubsw");
    OP2("pmaddubsw");
    OP2("pmulhrsw");
    OP2("psignb");
    OP2("psignw");
    OP2("psignd");
    OP2("pabsb");
    OP2("pabsw");
    OP2("pabsd");
    OPS(psllw, 3);
    OPS(psllw, 17);
    OPS(pslld, 31);
    OPS(psllq, 63);
    OPS(psrlw, 15);
    OPS(psrld, 1);
    OPS(psrlq, 40);
    OPS(psraw, 4);
    OPS(psraw, 200);
    OPS(psrad, 33);
    OPI(pshufw, 0x9c);
    OPI(pshufw, 0x1b);
    OPI(palignr, 0);
    OPI(palignr, 3);
    OPI(palignr, 8);
    OPI(palignr, 11);
    OPI(palignr, 16);
    OPI(palignr, 200);

    uint64_t acc = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t a = next(), t;
        unsigned int u;
        __asm__("pmovmskb %1, %0" : "=r"(u) : "y"(a));
        acc += u;
        __asm__("pextrw $1, %1, %0" : "=r"(u) : "y"(a));
        acc += u;
        __asm__("pextrw $7, %1, %0" : "=r"(u) : "y"(a));
        acc += u;
        t = a;
        __asm__("pinsrw $2, %1, %0" : "+y"(t) : "r"((unsigned)i * 40503u));
        acc += t;
        uint16_t w = (uint16_t)i;
        __asm__("pinsrw $7, %1, %0" : "+y"(t) : "m"(w));
        acc += t;
        __m128 f = _mm_set1_ps((float)i * 0.3f);
        __asm__("cvtpi2ps %1, %0" : "+x"(f) : "y"(a & 0x7fffffff7fffffffull));
        __asm__("cvtpi2ps %1, %0" : "+x"(f) : "m"(a));
        acc += (uint64_t)_mm_cvtss_si32(f);
        __m128d d = _mm_set1_pd(1.0);
        __asm__("cvtpi2pd %1, %0" : "+x"(d) : "y"(a));
        acc += (uint64_t)_mm_cvtsd_si64(d);
        __asm__("cvtps2pi %1, %0" : "=y"(t) : "x"(_mm_mul_ps(f, _mm_set1_ps(1.7f))));
        acc += t;
        __asm__("cvttps2pi %1, %0" : "=y"(t) : "x"(_mm_mul_ps(f, _mm_set1_ps(-0.37f))));
        acc += t;
        __asm__("cvtpd2pi %1, %0" : "=y"(t) : "x"(_mm_mul_pd(d, _mm_set1_pd(1.5))));
        acc += t;
        __asm__("cvttpd2pi %1, %0" : "=y"(t) : "x"(_mm_mul_pd(d, _mm_set1_pd(-2.5e-3))));
        acc += t;
        __m128i x;
        __asm__("movq2dq %1, %0" : "=x"(x) : "y"(a));
        x = _mm_add_epi64(x, x);
        __asm__("movdq2q %1, %0" : "=y"(t) : "x"(x));
        acc += t;
        unsigned char buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        uint64_t mask = next();
        __asm__ volatile("maskmovq %1, %0" ::"y"(mask), "y"(a), "D"(buf) : "memory");
        memcpy(&t, buf, 8);
        acc ^= t;
        __asm__ volatile("movntq %1, %0" : "=m"(*(uint64_t *)buf) : "y"(a ^ mask));
        memcpy(&t, buf, 8);
        acc += t;
        __asm__ volatile("movd %1, %%mm5\n\tmovd %%mm5, %0" : "=r"(u) : "r"((unsigned)a) : "mm5");
        acc += u;
        __asm__ volatile("movq %1, %%mm6\n\tmovq %%mm6, %0" : "=r"(t) : "r"(a * 3) : "mm6");
        acc += t;
        __asm__ volatile("emms");
    }
    printf("conversions  %016llx\n", (unsigned long long)acc);
    printf("all          %016llx\n", (unsigned long long)hash);

    // MMX and x87 share their registers.
    __asm__ volatile("fninit");
    __asm__ volatile("fld1\n\tfldpi" ::: "st", "st(1)");
    printf("x87 top after two loads: %d, tags %04x\n", (fpu_sw() >> 11) & 7, fpu_tags());
    uint64_t r;
    __asm__ volatile("movq %1, %%mm3\n\tpaddb %%mm3, %%mm3\n\tmovq %%mm3, %0" : "=r"(r) : "r"(0x0102030405060708ull) : "mm3");
    printf("paddb %016llx; top after MMX: %d, tags %04x\n", (unsigned long long)r, (fpu_sw() >> 11) & 7, fpu_tags());
    long double st3;
    __asm__ volatile("fxch %%st(3)\n\tfstpt %0\n\tfninit" : "=m"(st3));
    unsigned char raw[10];
    memcpy(raw, &st3, 10);
    printf("mm3 as x87 st(3): ");
    for (int i = 9; i >= 0; i--) printf("%02x", raw[i]);
    printf("\n");
    __asm__ volatile("movq %0, %%mm0\n\temms" ::"r"(r) : "mm0");
    printf("after emms: top %d, tags %04x\n", (fpu_sw() >> 11) & 7, fpu_tags());
    long double x = 1.0L / 3;
    __asm__ volatile("fldt %1\n\tfadd %%st(0), %%st(0)\n\tfstpt %0" : "=m"(x) : "m"(x));
    printf("x87 works again: %.20Lf\n", x);
    return 0;
}
