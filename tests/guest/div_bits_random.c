/* div and idiv at every width on pseudo-random and edge operands (dividends that fit the low
   register, full double-width ones, quotients at the edge of their range, divide errors caught
   as SIGFPE with the registers as they were), bt/bts/btr/btc on memory with negative and large
   register bit offsets, and bit scans and counts of zero and non-zero sources at every width. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

static uint64_t state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return state;
}
/* Small, edge or wide values, in turns. */
static uint64_t pick(void) {
    static const uint64_t edge[] = {0, 1, 2, 3, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000,
                                    0xffffffff, 0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull, ~1ull};
    uint64_t r = rnd();
    switch (r % 4) {
    case 0: return edge[(r >> 8) % (sizeof edge / sizeof edge[0])];
    case 1: return (r >> 8) % 1000;
    case 2: return -(int64_t)((r >> 8) % 1000);
    default: return rnd();
    }
}

static sigjmp_buf env;
static volatile uint64_t fault_rax, fault_rdx;
static void on_fpe(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    (void)sig; (void)si;
    fault_rax = uc->uc_mcontext.gregs[REG_RAX];
    fault_rdx = uc->uc_mcontext.gregs[REG_RDX];
    siglongjmp(env, 1);
}

static uint64_t sum;
static void mix(uint64_t v) { sum = (sum ^ v) * 0x100000001b3ull; }

#define DIV(insn, a, d, s)  DIVW(insn, "%2", a, d, s)
#define DIVW(insn, op, a, d, s)                                                                         \
    do {                                                                                           \
        uint64_t rax = (a), rdx = (d), src = (s);                                                  \
        if (sigsetjmp(env, 1) == 0) {                                                              \
            __asm__ volatile(insn " " op : "+a"(rax), "+d"(rdx) : "r"(src) : "cc");                 \
            mix(rax); mix(rdx);                                                                    \
        } else {                                                                                   \
            mix(0xde); mix(fault_rax); mix(fault_rdx);                                            \
        }                                                                                          \
    } while (0)

#define DIVB(insn, a, s)                                                                           \
    do {                                                                                           \
        uint64_t rax = (a); uint8_t src = (s);                                                     \
        if (sigsetjmp(env, 1) == 0) {                                                              \
            __asm__ volatile(insn " %1" : "+a"(rax) : "q"(src) : "cc");                            \
            mix(rax);                                                                              \
        } else {                                                                                   \
            mix(0xdb); mix(fault_rax);                                                             \
        }                                                                                          \
    } while (0)

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpe;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGFPE, &sa, 0);
    for (int i = 0; i < 20000; i++) {
        uint64_t a = pick(), d = pick(), s = pick();
        uint64_t ext = (int64_t)a >> 63;
        /* Dividends that fit rax (rdx zero or rax's sign), then anything. */
        DIV("divq", a, 0, s | (i & 1));
        DIV("idivq", a, ext, s);
        DIV("divq", a, d, s);
        DIV("idivq", a, d, s);
        DIVW("divl", "%k2", a, d & 0xffff, (uint32_t)s);
        DIVW("idivl", "%k2", a, (int64_t)(int32_t)a >> 31, (uint32_t)s);
        DIVW("divl", "%k2", a, d, s);
        DIVW("idivl", "%k2", a, d, s);
        DIVW("divw", "%w2", a, d & 0xff, (uint16_t)s);
        DIVW("idivw", "%w2", a, d, s);
        DIVB("divb", a & 0x3fff, (uint8_t)s);
        DIVB("idivb", a, (uint8_t)s);
        if (i % 1000 == 0) printf("%d %016llx\n", i, (unsigned long long)sum);
    }
    /* Bit tests on memory: the offset is signed and selects the word it falls in. */
    static uint64_t bits[64];
    for (int i = 0; i < 64; i++) bits[i] = rnd();
    uint64_t *mid = bits + 32;
    for (int i = 0; i < 20000; i++) {
        int64_t off = (int64_t)(rnd() % 4096) - 2048;
        uint8_t cf;
        switch (i % 4) {
        case 0: __asm__ volatile("btq %2, %1\n\tsetc %0" : "=r"(cf), "+m"(*mid) : "r"(off) : "cc", "memory"); break;
        case 1: __asm__ volatile("btsq %2, %1\n\tsetc %0" : "=r"(cf), "+m"(*mid) : "r"(off) : "cc", "memory"); break;
        case 2: __asm__ volatile("btrl %2, %1\n\tsetc %0" : "=r"(cf), "+m"(*(uint32_t *)mid) : "r"((int32_t)off) : "cc", "memory"); break;
        default: __asm__ volatile("btcw %2, %1\n\tsetc %0" : "=r"(cf), "+m"(*(uint16_t *)mid) : "r"((int16_t)(off % 512)) : "cc", "memory"); break;
        }
        mix(cf);
    }
    for (int i = 0; i < 64; i++) mix(bits[i]);
    printf("bit tests %016llx\n", (unsigned long long)sum);
    /* Scans and counts: a zero source leaves bsf/bsr's destination as it was. */
    for (int i = 0; i < 20000; i++) {
        uint64_t v = i % 5 == 0 ? 0 : pick() >> (rnd() % 64), r = rnd(), z;
        uint64_t flags;
        __asm__ volatile("bsfq %2, %0\n\tpushfq\n\tpopq %1" : "+r"(r), "=r"(flags) : "r"(v) : "cc"); mix(r); mix(flags & 0x40);
        __asm__ volatile("bsrl %k2, %k0\n\tpushfq\n\tpopq %1" : "+r"(r), "=r"(flags) : "r"(v) : "cc"); mix(r); mix(flags & 0x40);
        __asm__ volatile("bsfw %w2, %w0" : "+r"(r) : "r"(v) : "cc"); mix(r);
        __asm__ volatile("tzcntq %2, %0\n\tpushfq\n\tpopq %1" : "=r"(z), "=r"(flags) : "r"(v) : "cc"); mix(z); mix(flags & 0x41);
        __asm__ volatile("lzcntl %k2, %k0\n\tpushfq\n\tpopq %1" : "=r"(z), "=r"(flags) : "r"(v) : "cc"); mix(z); mix(flags & 0x41);
        __asm__ volatile("tzcntw %w2, %w0" : "+r"(r) : "r"(v) : "cc"); mix(r);
        __asm__ volatile("popcntq %2, %0\n\tpushfq\n\tpopq %1" : "=r"(z), "=r"(flags) : "r"(v) : "cc"); mix(z); mix(flags & 0x8d5);
    }
    printf("scans %016llx\n", (unsigned long long)sum);
    return 0;
}
