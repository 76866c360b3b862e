/* Loops that walk memory through registers moved by constants (indices, pointers, strides of
 * one to 64 bytes, up and down), into pages without access: the SIGSEGV handler opens the
 * page and returns, and the loop goes on from the faulting element. Then loops whose first
 * element lies where nothing is mapped (far above any mapping, below the first page, off the
 * end of a mapping): each faults at its first access, with the address the CPU reports. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned char *area;
static long page;
static int faults;
static long first_fault = -1;
static uintptr_t first_address;
static int escape;
static sigjmp_buf out;

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    faults++;
    long at = (long)((uintptr_t)si->si_addr - (uintptr_t)area);
    if (first_fault < 0) {
        first_fault = at;
        first_address = (uintptr_t)si->si_addr;
    }
    if (escape) siglongjmp(out, 1);
    unsigned char *p = (unsigned char *)((uintptr_t)si->si_addr & ~(uintptr_t)(page - 1));
    mprotect(p, page, PROT_READ | PROT_WRITE);
}

static unsigned sum(long n) {
    unsigned s = 0;
    for (long i = 0; i < n; i++) s = s * 31 + area[i];
    return s;
}

/* Eight pages, every other one closed from the second on. */
static void reset(void) {
    mprotect(area, 8 * page, PROT_READ | PROT_WRITE);
    memset(area, 0, 8 * page);
    for (int k = 1; k < 8; k += 2) mprotect(area + k * page, page, PROT_NONE);
    faults = 0;
    first_fault = -1;
}

static void report(const char *what, unsigned long value) {
    mprotect(area, 8 * page, PROT_READ | PROT_WRITE);
    printf("%-24s faults %d first at %ld value %lx sum %08x\n", what, faults, first_fault, value, sum(8 * page));
}

__attribute__((noinline)) static unsigned long fill_bytes(unsigned char *p, long n) {
    for (long i = 0; i < n; i++) p[i] = (unsigned char)(i * 2654435761u >> 13);
    return (unsigned long)n;
}

__attribute__((noinline)) static unsigned long fill_ints_down(unsigned *p, long n) {
    for (long i = n - 1; i >= 0; i--) p[i] = (unsigned)(i * 40503u);
    return (unsigned long)n;
}

struct rec {
    unsigned long key;
    unsigned char pad[56];
};

__attribute__((noinline)) static unsigned long walk_records(struct rec *r, struct rec *end) {
    unsigned long s = 0;
    for (; r < end; r++) {
        r->key = (unsigned long)(end - r) * 0x9e3779b97f4a7c15ul;
        s += r->key >> 7;
    }
    return s;
}

__attribute__((noinline)) static unsigned long sum_pairs(const unsigned long *p, long n) {
    unsigned long s = 0;
    for (long i = 0; i < n; i += 2) s += p[i] * 3 + p[i + 1];
    return s;
}

__attribute__((noinline)) static unsigned long copy_words(unsigned long *dst, const unsigned long *src, long n) {
    for (long i = 0; i < n; i++) dst[i] = src[i] + (unsigned long)i;
    return (unsigned long)n;
}

/* Runs `body` expecting it to fault at once; reports where (within the area, from its start). */
#define FAR(what, body)                                                                            \
    do {                                                                                           \
        faults = 0;                                                                                \
        first_fault = -1;                                                                          \
        escape = 1;                                                                                \
        unsigned long v = 0;                                                                       \
        if (!sigsetjmp(out, 1)) v = (body);                                                        \
        escape = 0;                                                                                \
        int inside = first_fault >= 0 && first_fault < 8 * page;                                   \
        printf("%-24s faults %d first at %s%lx value %lx\n", what, faults, inside ? "area+" : "",   \
               inside ? (unsigned long)first_fault : (unsigned long)first_address, v);             \
    } while (0)

int main(void) {
    page = sysconf(_SC_PAGESIZE);
    area = mmap(0, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);

    for (int round = 0; round < 3; round++) {
        reset();
        report("bytes up", fill_bytes(area + round, 8 * page - 8));
        reset();
        report("ints down", fill_ints_down((unsigned *)(area + 4 * round), 2 * page - 4));
        reset();
        report("records of 64", walk_records((struct rec *)(area + 8 * round), (struct rec *)(area + 8 * page - 64)));
        reset();
        for (long i = 0; i < page / 8; i++) ((unsigned long *)area)[i] = (unsigned long)i * 77;
        report("pairs read", sum_pairs((const unsigned long *)area, page));
        reset();
        report("words copied", copy_words((unsigned long *)(area + 2 * page), (const unsigned long *)area, page / 8 * 3));
    }

    /* Nothing mapped at the first element: far above, at the bottom, off the end. */
    FAR("bytes far above", fill_bytes((unsigned char *)(uintptr_t)(1ul << 45), 64));
    FAR("pairs far above", sum_pairs((const unsigned long *)(uintptr_t)0x500000000000ul, 16));
    FAR("words copied from far", copy_words((unsigned long *)area, (const unsigned long *)(uintptr_t)0x500000001000ul, 16));
    FAR("ints below first page", fill_ints_down((unsigned *)(uintptr_t)0x100, 16));
    FAR("records near the top", walk_records((struct rec *)(uintptr_t)0x7ffffffff000ul, (struct rec *)(uintptr_t)0x7ffffffff800ul));
    munmap(area + 6 * page, 2 * page);
    mprotect(area, 6 * page, PROT_READ | PROT_WRITE);
    FAR("bytes off the end", fill_bytes(area + 5 * page, 2 * page));
    FAR("pairs off the end", sum_pairs((const unsigned long *)(area + 5 * page), page / 4));
    printf("done\n");
    return 0;
}
