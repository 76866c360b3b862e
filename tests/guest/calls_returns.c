#define _GNU_SOURCE
/* Calls and returns that do not pair up as a call stack: recursion far deeper than any host
 * stack could follow, longjmp and siglongjmp out of deep call chains, coroutines that switch
 * stacks, a call that never returns, a return to an address no call pushed, a callee that
 * changes its own return address, and signals that arrive deep in recursion. Then stores in a
 * row before a faulting one, and a read-modify-write before a fault: the handler must see the
 * state just before the faulting instruction and memory written exactly once. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

static volatile long sink;

__attribute__((noinline)) static long deep(long n) {
    if (n == 0) return 1;
    long r = deep(n - 1);
    sink += r;
    return r + (n & 3);
}

static jmp_buf env;
__attribute__((noinline)) static void dive(int n, int at) {
    sink += n;
    if (n == at) longjmp(env, n);
    dive(n + 1, at);
    sink -= 1; /* never reached */
}

/* Coroutines: two stacks and a switch that saves the callee-saved registers, swaps the
 * stack pointer and returns on the other stack. */
void switch_stack(void **save_sp, void *load_sp);
__asm__(".text\n.globl switch_stack\nswitch_stack:\n"
        "push %rbp\npush %rbx\npush %r12\npush %r13\npush %r14\npush %r15\n"
        "mov %rsp, (%rdi)\nmov %rsi, %rsp\n"
        "pop %r15\npop %r14\npop %r13\npop %r12\npop %rbx\npop %rbp\nret\n");
static void *main_sp, *co_sp;
static long co_values[64];
static int co_count;
static void co_body(void) {
    for (long i = 0;; i++) {
        co_values[co_count++ % 64] = i * i + deep(i % 7);
        switch_stack(&co_sp, main_sp);
    }
}
static void start_coroutine(void) {
    static _Alignas(16) char stack[1 << 16];
    void **sp = (void **)(stack + sizeof stack);
    *--sp = 0;                /* keeps the entry's stack aligned as after a call */
    *--sp = (void *)co_body;  /* where the first switch returns to */
    for (int i = 0; i < 6; i++) *--sp = 0;
    co_sp = sp;
}

/* A call whose return address is popped at once, a return to an address no call pushed, and
 * a callee that moves its return address past an instruction. */
__attribute__((noinline)) static long odd_flow(long x) {
    long r;
    __asm__ volatile("call 1f\n1: pop %0\n" : "=r"(r));
    long here = (long)(r != 0);
    __asm__ volatile("lea 2f(%%rip), %%rax\npush %%rax\nret\n"
                     "add $1000, %0\n"
                     "2: add $1, %0\n"
                     : "+r"(x) : : "rax");
    return x + here;
}
long skip_next(long x);
__asm__(".text\n.globl skip_next\nskip_next:\n"
        "addq $5, (%rsp)\n" /* skip the caller's 5-byte add */
        "lea 1(%rdi), %rax\nret\n");
__attribute__((noinline)) static long call_skip(long x) {
    long r;
    __asm__ volatile("mov %1, %%rdi\ncall skip_next\n"
                     ".byte 0x05, 0x00, 0x01, 0x00, 0x00\n" /* add eax, 0x100 (skipped) */
                     "mov %%rax, %0\n"
                     : "=r"(r) : "r"(x) : "rax", "rdi", "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11", "memory");
    return r;
}

static volatile int ticks;
static void on_alarm(int sig) {
    (void)sig;
    ticks++;
    sink += deep(50);
}

static sigjmp_buf segv_env;
static volatile uintptr_t fault_addr;
static volatile int show_registers;
static void on_segv(int sig, siginfo_t *si, void *uc_) {
    (void)sig;
    ucontext_t *uc = uc_;
    fault_addr = (uintptr_t)si->si_addr;
    /* The registers the faulting instruction saw (where they hold no addresses). */
    if (show_registers)
        printf("  rax=%llx rbx=%llx rcx=%llx rdx=%llx\n", (unsigned long long)uc->uc_mcontext.gregs[REG_RAX],
           (unsigned long long)uc->uc_mcontext.gregs[REG_RBX], (unsigned long long)uc->uc_mcontext.gregs[REG_RCX],
           (unsigned long long)uc->uc_mcontext.gregs[REG_RDX]);
    siglongjmp(segv_env, 1);
}

__attribute__((noinline)) static void fault_deep(int n, volatile long *bad) {
    if (n == 0) *bad = 1;
    else fault_deep(n - 1, bad);
    sink++;
}

/* Stores in a row (no read between them), then a store that faults. */
void stores_then_fault(long *ok, long *bad);
__asm__(".text\n.globl stores_then_fault\nstores_then_fault:\n"
        "mov $0x11, %eax\nmov $0x22, %ebx\nmov $0x33, %ecx\n"
        "mov %rax, (%rdi)\nmov %rbx, 8(%rdi)\npush %rcx\npush %rax\n"
        "add $7, %rax\nmov %rcx, 16(%rdi)\nmov $0x44, %edx\n"
        "mov %rdx, (%rsi)\n" /* faults */
        "pop %rax\npop %rcx\nret\n");
/* A read-modify-write, a load, a store of what it loaded, then a fault. */
void rmw_then_fault(long *ok, long *bad);
__asm__(".text\n.globl rmw_then_fault\nrmw_then_fault:\n"
        "push %rbx\n"
        "addq $5, (%rdi)\nmov (%rdi), %rax\nmov %rax, 8(%rdi)\nlea 1(%rax), %rbx\n"
        "incq 16(%rdi)\nmov 16(%rdi), %rcx\nmov $0x55, %edx\n"
        "mov %rbx, (%rsi)\n" /* faults */
        "pop %rbx\nret\n");

int main(void) {
    printf("deep(100000) = %ld\n", deep(100000));
    for (int round = 0; round < 5; round++) {
        int r = setjmp(env);
        if (r == 0) dive(0, 1000 * (round + 1));
        printf("longjmp from depth %d; deep(3000) = %ld\n", r, deep(3000));
    }

    start_coroutine();
    for (int i = 0; i < 200; i++) switch_stack(&main_sp, co_sp);
    long sum = 0;
    for (int i = 0; i < 64; i++) sum += co_values[i];
    printf("coroutine: %d values, sum %ld\n", co_count, sum);

    printf("odd_flow(5) = %ld, call_skip(7) = %ld\n", odd_flow(5), call_skip(7));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {{0, 2000}, {0, 2000}};
    setitimer(ITIMER_REAL, &it, 0);
    long total = 0;
    while (ticks < 5) total += deep(20000) & 0xff;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, 0);
    printf("recursion under a timer: %s\n", total > 0 ? "done" : "nothing ran");

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    long *page = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect((char *)page + 4096, 4096, PROT_NONE);
    long *bad = (long *)((char *)page + 4096 + 64);
    for (int i = 0; i < 3; i++) {
        if (!sigsetjmp(segv_env, 1)) fault_deep(100 * i, bad);
        printf("fault at depth %d: page+%ld\n", 100 * i, (long)(fault_addr - (uintptr_t)page));
    }
    memset(page, 0, 64);
    show_registers = 1;
    if (!sigsetjmp(segv_env, 1)) stores_then_fault(page, bad);
    printf("stores before the fault: %lx %lx %lx\n", page[0], page[1], page[2]);
    page[0] = 10, page[1] = 0, page[2] = 20;
    if (!sigsetjmp(segv_env, 1)) rmw_then_fault(page, bad);
    printf("after the read-modify-writes: %ld %ld %ld\n", page[0], page[1], page[2]);
    return 0;
}
