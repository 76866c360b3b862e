/* rep movs and rep stos of every element size that run into a page without access: the
 * SIGSEGV handler sees rcx, rsi and rdi at the first element on that page (the ones before
 * it done), opens the page and returns, and the instruction goes on from there. Elements
 * that straddle the boundary too (an odd start). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

static unsigned char *area;
static long page;
static int faults;
static long seen_rcx, seen_rsi, seen_rdi;

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    ucontext_t *uc = ctx;
    faults++;
    seen_rcx = uc->uc_mcontext.gregs[REG_RCX];
    seen_rsi = uc->uc_mcontext.gregs[REG_RSI] - (long)area;
    seen_rdi = uc->uc_mcontext.gregs[REG_RDI] - (long)area;
    unsigned char *p = (unsigned char *)((uintptr_t)si->si_addr & ~(uintptr_t)(page - 1));
    mprotect(p, page, PROT_READ | PROT_WRITE);
}

static unsigned sum(const unsigned char *p, long n) {
    unsigned s = 0;
    for (long i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

/* Closes the page after the first two, fills the first two, then runs the instruction. */
static void reset(void) {
    mprotect(area, 4 * page, PROT_READ | PROT_WRITE);
    for (long i = 0; i < 4 * page; i++) area[i] = (unsigned char)(i * 7);
    mprotect(area + 2 * page, page, PROT_NONE);
    faults = 0;
    seen_rcx = seen_rsi = seen_rdi = -1;
}

/* What the handler saw (rsi only for movs) and where the instruction left off; then the
 * whole area, opened first (a run without a fault leaves the third page closed). */
static void report(const char *what, int movs, long rcx, long rsi, long rdi) {
    int n = faults;
    printf("%-22s faults %d", what, n);
    if (n) {
        printf(" at rcx %ld rdi %ld", seen_rcx, seen_rdi);
        if (movs) printf(" rsi %ld", seen_rsi);
    }
    printf("; after rcx %ld rdi %ld", rcx, rdi - (long)area);
    if (movs) printf(" rsi %ld", rsi - (long)area);
    mprotect(area, 4 * page, PROT_READ | PROT_WRITE);
    printf("; sum %08x\n", sum(area, 4 * page));
}

#define MOVS(insn, name, src_off, dst_off, count)                                                   \
    do {                                                                                         \
        reset();                                                                                 \
        unsigned char *s = area + (src_off), *d = area + (dst_off);                              \
        long n = (count);                                                                        \
        __asm__ volatile("rep " insn : "+S"(s), "+D"(d), "+c"(n) : : "memory");                 \
        report(name, 1, n, (long)s, (long)d);                                                    \
    } while (0)

#define STOS(insn, name, dst_off, count)                                                         \
    do {                                                                                         \
        reset();                                                                                 \
        unsigned char *d = area + (dst_off);                                                     \
        long n = (count);                                                                        \
        __asm__ volatile("rep " insn : "+D"(d), "+c"(n) : "a"(0x1122334455667788ull) : "memory"); \
        report(name, 0, n, 0, (long)d);                                                          \
    } while (0)

int main(void) {
    page = sysconf(_SC_PAGESIZE);
    area = mmap(0, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    long p = page;
    /* Into the closed page as the destination. */
    MOVS("movsb", "movsb into", 0, p + 100, p);
    MOVS("movsw", "movsw into", 0, p + 100, p / 2);
    MOVS("movsl", "movsl into odd", 0, p + 101, p / 4);
    MOVS("movsq", "movsq into", 0, p + 96, p / 8);
    MOVS("movsq", "movsq into odd", 0, p + 99, p / 8);
    /* Out of the closed page as the source. */
    MOVS("movsb", "movsb from", 2 * p - 50, 3 * p + 8, 200);
    MOVS("movsq", "movsq from odd", 2 * p - 45, 3 * p + 8, 40);
    STOS("stosb", "stosb into", p + 200, p);
    STOS("stosw", "stosw into odd", p + 201, p / 2);
    STOS("stosl", "stosl into", p + 200, p / 4);
    STOS("stosq", "stosq into", p + 8, p / 8 + 4);
    STOS("stosq", "stosq into odd", p + 13, p / 8 + 4);
    /* No fault: whole pages and more. */
    MOVS("movsq", "movsq across pages", 100, 3 * p + 8, (p - 16) / 8);
    STOS("stosl", "stosl across pages", p - 100, 100);
    return 0;
}
