/* Faults turned into signals that guest handlers catch: divide error (SIGFPE), ud2 (SIGILL),
 * int3 (SIGTRAP), a misaligned operand of an aligned SSE load and store (SIGSEGV, #GP),
 * recovered with siglongjmp; si_code and si_addr checked. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
static sigjmp_buf jb;
static volatile int last_sig, last_code; static void *volatile last_addr;
static void h(int s, siginfo_t *si, void *uc) {
    last_sig = s; last_code = si->si_code; last_addr = si->si_addr;
    if (s != SIGTRAP) siglongjmp(jb, s);
}
extern char ud2_here[];
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGFPE, &sa, 0); sigaction(SIGILL, &sa, 0); sigaction(SIGTRAP, &sa, 0);
    sigaction(SIGSEGV, &sa, 0);
    static char buf[64] __attribute__((aligned(16)));
    for (int off = 0; off < 17; off += 4) {
        char *p = buf + off;
        last_sig = 0;
        if (sigsetjmp(jb, 1) == 0) __asm__ volatile("movaps (%0), %%xmm1\n\tpaddd (%0), %%xmm1\n\tmovdqa %%xmm1, 16(%0)" ::"r"(p) : "xmm1", "memory");
        printf("aligned sse at +%d: signal %d code %#x addr %p\n", off, last_sig, last_code, last_addr);
        last_sig = 0;
        if (sigsetjmp(jb, 1) == 0) __asm__ volatile("movups (%0), %%xmm1\n\tmovdqu %%xmm1, 16(%0)\n\tlddqu (%0), %%xmm2" ::"r"(p) : "xmm1", "xmm2", "memory");
        printf("unaligned sse at +%d: signal %d\n", off, last_sig);
    }
    volatile int zero = 0, x = 7;
    for (int round = 0; round < 3; round++) {
        int r = sigsetjmp(jb, 1);
        if (r == 0) { x = x / zero; printf("not reached\n"); }
        else printf("round %d: caught signal %d code %d\n", round, last_sig, last_code);
    }
    if (sigsetjmp(jb, 1) == 0) { __asm__ volatile(".globl ud2_here\nud2_here: ud2"); }
    printf("ud2: signal %d code %d addr matches %d\n", last_sig, last_code, last_addr == (void *)ud2_here);
    __asm__ volatile("int3");
    printf("int3: signal %d code %d, execution continued after it\n", last_sig, last_code);
    signal(SIGFPE, SIG_DFL);
    fflush(stdout);
    x = x / zero;
    return 0;
}
