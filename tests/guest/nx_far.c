#define _GNU_SOURCE
/* Execute permission and addresses outside the address space: calling into a page without
 * PROT_EXEC (never executable, or after mprotect took it away, and back), running off the end
 * of executable code into a non-executable page, and loads, stores and jumps to canonical
 * addresses far above anything mapped, at the very top of a 40-bit space and non-canonical
 * ones. Each fault is caught with siglongjmp and reported as layout-independent facts:
 * si_signo, si_code, whether si_addr (and the saved rip) is the address used, trap number and
 * error code. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

static sigjmp_buf jb;
static volatile int got_sig, got_code;
static void *volatile got_addr;
static volatile uintptr_t got_rip;
static volatile long got_trapno, got_err, got_rcx;

static void jump_back(int s, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    got_sig = s; got_code = si->si_code; got_addr = si->si_addr;
    got_rip = uc->uc_mcontext.gregs[REG_RIP];
    got_trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
    got_err = uc->uc_mcontext.gregs[REG_ERR];
    got_rcx = uc->uc_mcontext.gregs[REG_RCX];
    siglongjmp(jb, 1);
}

static void report(const char *what, void *want, void *want_rip) {
    printf("%s: signal %d code %d addr %s rip %s trapno %ld err %#lx\n", what, got_sig, got_code,
           got_addr == want ? "exact" : "WRONG",
           want_rip == 0 ? "-" : (void *)got_rip == want_rip ? "exact" : "WRONG", got_trapno,
           got_err & 0x17);
    got_sig = got_code = 0; got_addr = 0; got_rip = 0; got_trapno = got_err = -1;
}

typedef long (*fn)(void);

static void call(const char *what, void *target, void *want_addr, void *want_rip) {
    if (!sigsetjmp(jb, 1)) {
        long r = ((fn)target)();
        printf("%s: returned %ld\n", what, r);
        return;
    }
    report(what, want_addr, want_rip);
}

static void load(const char *what, void *p, void *want) {
    if (!sigsetjmp(jb, 1)) {
        long v = *(volatile long *)p;
        printf("%s: read %ld\n", what, v);
        return;
    }
    report(what, want, 0);
}

static void store(const char *what, void *p, void *want) {
    if (!sigsetjmp(jb, 1)) {
        *(volatile long *)p = 1;
        printf("%s: wrote\n", what);
        return;
    }
    report(what, want, 0);
}

static void load16(const char *what, void *p, void *want) {
    if (!sigsetjmp(jb, 1)) {
        __asm__ volatile("movdqu (%0), %%xmm0" : : "r"(p) : "xmm0", "memory");
        printf("%s: read\n", what);
        return;
    }
    report(what, want, 0);
}

/* Functions alone on a page of the program's own text (so its translations can come from
 * the cache), the second never run before its page loses PROT_EXEC. */
__attribute__((noinline, aligned(4096), section(".text.nx_page"))) long in_text(void) { return 7; }
__attribute__((noinline, section(".text.nx_page"))) long in_text_later(void) { return 8; }
__attribute__((noinline, aligned(4096), section(".text.nx_page"))) long past_page(void) { return 9; }

/* mov eax, 42; ret */
static const unsigned char ret42[] = {0xb8, 42, 0, 0, 0, 0xc3};

int main(void) {
    long pg = sysconf(_SC_PAGESIZE);
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = jump_back; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);

    /* A read-write page holding code. */
    unsigned char *rw = mmap(0, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(rw, ret42, sizeof ret42);
    call("call into a read-write page", rw, rw, rw);
    unsigned char *ro = mmap(0, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    call("call into a read-only page", ro, ro, ro);

    /* Executable, then not, then again. */
    mprotect(rw, pg, PROT_READ | PROT_EXEC);
    call("call after mprotect(READ|EXEC)", rw, 0, 0);
    call("call again", rw, 0, 0);
    mprotect(rw, pg, PROT_READ);
    call("call after mprotect(READ)", rw, rw, rw);
    mprotect(rw, pg, PROT_READ | PROT_EXEC);
    call("call after mprotect(READ|EXEC) again", rw, 0, 0);
    munmap(rw, pg);
    call("call into the unmapped page", rw, rw, rw);

    /* Executable memory moved by mremap stays executable. */
    unsigned char *mv = mmap(0, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(mv, ret42, sizeof ret42);
    mprotect(mv, pg, PROT_READ | PROT_EXEC);
    call("call before mremap", mv, 0, 0);
    unsigned char *blocker = mmap(mv + pg, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    unsigned char *moved = mremap(mv, pg, 4 * pg, MREMAP_MAYMOVE);
    printf("mremap moved it: %d\n", moved != MAP_FAILED && moved != mv);
    call("call after mremap", moved, 0, 0);
    munmap(moved, 4 * pg);
    if (blocker != MAP_FAILED) munmap(blocker, pg);

    /* Code that runs off the end of an executable page into a non-executable one. */
    unsigned char *two = mmap(0, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(two + pg - 8, 0x90, 8);
    memcpy(two + pg, ret42, sizeof ret42);
    mprotect(two, pg, PROT_READ | PROT_EXEC);
    call("nops into a non-executable page", two + pg - 8, two + pg, two + pg);
    mprotect(two + pg, pg, PROT_READ | PROT_EXEC);
    call("nops into the page made executable", two + pg - 8, 0, 0);
    mprotect(two + pg, pg, PROT_READ);
    call("nops into the page made non-executable", two + pg - 8, two + pg, two + pg);
    mprotect(two, pg, PROT_READ | PROT_WRITE);
    two[pg - 2] = 0xb8; /* mov eax, imm32: its immediate lies on the next page */
    two[pg - 1] = 42;
    mprotect(two, pg, PROT_READ | PROT_EXEC);
    call("an instruction running into a non-executable page", two + pg - 8, two + pg, two + pg - 2);

    /* The program's own text. */
    void *text = (void *)((uintptr_t)in_text & ~(uintptr_t)(pg - 1));
    printf("text functions share a page: %d\n",
           (void *)((uintptr_t)in_text_later & ~(uintptr_t)(pg - 1)) == text &&
               (void *)((uintptr_t)past_page & ~(uintptr_t)(pg - 1)) != text);
    call("call into the text", (void *)in_text, 0, 0);
    mprotect(text, pg, PROT_READ);
    call("call into the text made read-only", (void *)in_text, (void *)in_text, (void *)in_text);
    call("first call of another function there", (void *)in_text_later, (void *)in_text_later,
         (void *)in_text_later);
    mprotect(text, pg, PROT_READ | PROT_EXEC);
    call("call into the text made executable again", (void *)in_text, 0, 0);
    call("and the other function", (void *)in_text_later, 0, 0);
    call("a function on the next page", (void *)past_page, 0, 0);

    /* Far above the mappings (canonical), at the top of a 40-bit space, and non-canonical. */
    void *far[] = {(void *)0x20000001000ul, (void *)0x7fff00000000ul, (void *)0x10000000000ul};
    for (int i = 0; i < 3; i++) {
        char what[64];
        snprintf(what, sizeof what, "far address %d", i);
        printf("%s\n", what);
        load("  load", far[i], far[i]);
        store("  store", far[i], far[i]);
        call("  call", far[i], far[i], far[i]);
    }
    load16("16-byte load across 1<<40", (char *)0x10000000000ul - 8, (char *)0x10000000000ul - 8);
    /* The last page below 1<<40 mapped: accesses running off its end. */
    char *top = mmap((void *)0xfffffff000ul, pg, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("top page mapped: %d\n", top == (char *)0xfffffff000ul);
    char *end = top + pg;
    load16("16-byte load across the end of the top page", end - 8, end);
    if (!sigsetjmp(jb, 1)) {
        __asm__ volatile("movdqu %%xmm1, (%0)" : : "r"(end - 8) : "memory");
        printf("16-byte store: wrote\n");
    } else {
        report("16-byte store across the end of the top page", end, 0);
    }
    static char src[256];
    if (!sigsetjmp(jb, 1)) {
        unsigned long n = 200;
        char *d = end - 100;
        const char *sp = src;
        __asm__ volatile("rep movsb" : "+c"(n), "+D"(d), "+S"(sp) : : "memory");
        printf("rep movsb: copied\n");
    } else {
        printf("rcx left %ld: ", got_rcx);
        report("rep movsb across the end of the top page", end, 0);
    }
    munmap(top, pg);

    void *nc = (void *)0x8000000000001000ul;
    load("non-canonical load", nc, 0);
    store("non-canonical store", nc, 0);
    printf("done\n");
    return 0;
}
