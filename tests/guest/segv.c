#define _GNU_SOURCE
/* Bad memory accesses become SIGSEGV/SIGBUS for guest handlers: siglongjmp recovery with
 * si_addr/si_code checked (unmapped, read-only, PROT_NONE, a file mapping past its end, base
 * registers and displacements that add up to addresses below zero, past 1 TiB, past the user
 * half or non-canonical), a handler that makes the page accessible and returns (the faulting
 * instruction runs again with every register as it was: a summing loop keeps its partial sum),
 * a stack overflow caught on the alternate stack, the sigcontext's trap number and error code,
 * and finally an unhandled fault ending the process as the kernel would. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

static sigjmp_buf jb;
static volatile int got_sig, got_code;
static void *volatile got_addr;
static volatile long got_trapno, got_err;
static char *lazy;
static long pagesz;
static volatile int faults;

static void jump_back(int s, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    got_sig = s; got_code = si->si_code; got_addr = si->si_addr;
    got_trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
    got_err = uc->uc_mcontext.gregs[REG_ERR];
    siglongjmp(jb, 1);
}

static void make_accessible(int s, siginfo_t *si, void *uc) {
    (void)s; (void)uc;
    char *p = (char *)((uintptr_t)si->si_addr & ~(uintptr_t)(pagesz - 1));
    faults++;
    if (mprotect(p, pagesz, PROT_READ | PROT_WRITE) != 0) _exit(99);
}

static void report(const char *what, void *want) {
    printf("%s: signal %d code %d addr %s trapno %ld err %ld\n", what, got_sig, got_code,
           got_addr == want ? "exact" : "WRONG", got_trapno, got_err & 6);
}

__attribute__((noinline)) static long sum_pages(volatile long *a, long n) {
    long s = 0, x = 1;
    for (long i = 0; i < n; i++) { s += a[i] * x; x = x * 3 + 1; a[i] = s; }
    return s ^ x;
}

/* Reads and writes whose base register and displacement add up to an address beyond
 * anything mapped: below zero, past 1 TiB, past the user half, non-canonical. */
__attribute__((noinline)) static long read_below(uintptr_t base) {
    long v; __asm__ volatile("mov -0x20(%1), %0" : "=r"(v) : "r"(base) : "memory"); return v;
}
__attribute__((noinline)) static long read_far(uintptr_t base) {
    long v; __asm__ volatile("mov 0x7ffffff0(%1), %0" : "=r"(v) : "r"(base) : "memory"); return v;
}
__attribute__((noinline)) static void write_far_back(uintptr_t base) {
    __asm__ volatile("movl $1, -0x7ffffff0(%0)" :: "r"(base) : "memory");
}
__attribute__((noinline)) static long read_indexed(uintptr_t base, uintptr_t i) {
    long v; __asm__ volatile("mov 8(%1,%2,8), %0" : "=r"(v) : "r"(base), "r"(i) : "memory"); return v;
}

static void wild_accesses(void) {
    const uintptr_t tib = (uintptr_t)1 << 40;
    struct { const char *what; int kind; uintptr_t base, i, want; } cases[] = {
        {"read 0x20 below address 0x10", 0, 0x10, 0, (uintptr_t)0x10 - 0x20},
        {"read far above 1 TiB", 1, tib - 0x1000, 0, tib - 0x1000 + 0x7ffffff0},
        {"read at 1 TiB", 1, tib - 0x7ffffff0, 0, tib},
        {"read far above the user half", 1, ((uintptr_t)1 << 47) - 0x100, 0, 0},
        {"write far below 1 TiB", 2, tib + 0x1000, 0, tib + 0x1000 - 0x7ffffff0},
        {"write far below address 0x1000", 2, 0x1000, 0, 0x1000 - 0x7ffffff0},
        {"read indexed past 1 TiB", 3, 0x1000, tib / 8, 0x1000 + tib + 8},
        {"read indexed non-canonical", 3, 0x1000, (uintptr_t)1 << 60, 0},
    };
    for (unsigned k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        got_sig = 0;
        if (!sigsetjmp(jb, 1)) {
            long v = 0;
            switch (cases[k].kind) {
            case 0: v = read_below(cases[k].base); break;
            case 1: v = read_far(cases[k].base); break;
            case 2: write_far_back(cases[k].base); break;
            default: v = read_indexed(cases[k].base, cases[k].i); break;
            }
            printf("%s: no fault (%ld)\n", cases[k].what, v);
        }
        report(cases[k].what, (void *)cases[k].want);
    }
}

static volatile int depth;
__attribute__((noinline)) static int recurse(int n) {
    volatile char buf[512];
    buf[0] = (char)n; depth = n;
    return recurse(n + 1) + buf[0];
}

int main(void) {
    pagesz = sysconf(_SC_PAGESIZE);
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = jump_back; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0); sigaction(SIGBUS, &sa, 0);

    volatile int *null = (volatile int *)16;
    if (!sigsetjmp(jb, 1)) { int v = *null; printf("read %d\n", v); }
    report("read of address 16", (void *)16);
    if (!sigsetjmp(jb, 1)) { *null = 5; }
    report("write of address 16", (void *)16);

    char *ro = mmap(0, pagesz, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!sigsetjmp(jb, 1)) { ro[100] = 1; }
    report("write to read-only page", ro + 100);
    printf("read-only page still reads %d\n", ro[100]);

    char *none = mmap(0, 2 * pagesz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!sigsetjmp(jb, 1)) { volatile char c = none[pagesz + 7]; (void)c; }
    report("read of PROT_NONE page", none + pagesz + 7);

    munmap(none, 2 * pagesz);
    if (!sigsetjmp(jb, 1)) { volatile long v = *(volatile long *)(none + 8); (void)v; }
    report("read of unmapped page", none + 8);

    wild_accesses();

    /* A copy that runs into a guard page partway. */
    char *two = mmap(0, 2 * pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(two + pagesz, pagesz, PROT_NONE);
    if (!sigsetjmp(jb, 1)) { memset(two + pagesz - 64, 'x', 256); }
    printf("memset into guard page: signal %d code %d\n", got_sig, got_code);

    /* A file mapping beyond the end of the file: SIGBUS. */
    FILE *f = tmpfile(); fputs("hello", f); fflush(f);
    char *fm = mmap(0, 2 * pagesz, PROT_READ, MAP_PRIVATE, fileno(f), 0);
    if (!sigsetjmp(jb, 1)) { volatile char c = fm[pagesz + 3]; (void)c; }
    report("read past end of file mapping", fm + pagesz + 3);
    printf("file mapping starts with %.5s\n", fm);

    /* The handler fixes the access and returns: every page faults once, and the loop
     * continues with its registers intact. */
    sa.sa_sigaction = make_accessible;
    sigaction(SIGSEGV, &sa, 0);
    long n = 16 * pagesz / sizeof(long);
    lazy = mmap(0, 16 * pagesz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long r = sum_pages((volatile long *)lazy, n);
    printf("lazy pages: %d faults, result %ld\n", faults, r);
    faults = 0;
    r = sum_pages((volatile long *)lazy, n);
    printf("again: %d faults, result %ld\n", faults, r);

    /* Stack overflow, caught on the alternate stack. */
    stack_t ss; ss.ss_sp = malloc(SIGSTKSZ * 4); ss.ss_size = SIGSTKSZ * 4; ss.ss_flags = 0;
    sigaltstack(&ss, 0);
    sa.sa_sigaction = jump_back; sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, 0);
    if (!sigsetjmp(jb, 1)) { recurse(0); }
    printf("stack overflow: signal %d, depth beyond 1000: %d\n", got_sig, depth > 1000);

    /* Finally an unhandled fault. */
    signal(SIGSEGV, SIG_DFL);
    fflush(stdout);
    *null = 1;
    return 0;
}
