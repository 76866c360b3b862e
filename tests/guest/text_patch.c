/* The program's own text patched while it runs: a function that hot code on another page calls
 * directly (and jumps to, as a tail call) is rewritten in place, through mprotect of its text
 * page and a store, and later given its original bytes back. Every call after each change must
 * run the instructions the text holds then, however the caller reaches it. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

volatile int k = 3;

/* Alone at the start of a page of its own, so that its callers' code stays unchanged: they keep
 * reaching it the way they did before the patch. */
__attribute__((noinline, noclone, aligned(4096), section(".text.patched"))) int target(int x) {
    return x * k + 1;
}

__attribute__((noinline, noclone)) int tail(int x) {
    return target(x + 1);
}

__attribute__((noinline, noclone)) long hot(int n) {
    long s = 0;
    for (int i = 0; i < n; i++)
        s += (i & 7) ? target(i) : tail(i);
    return s;
}

static void protect(void *p, size_t len, int prot) {
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)p + len + 4095) & ~(uintptr_t)4095;
    if (mprotect((void *)page, end - page, prot) != 0) {
        perror("mprotect");
        _exit(1);
    }
}

static void write_text(unsigned char *at, const unsigned char *bytes, size_t len) {
    protect(at, len, PROT_READ | PROT_WRITE | PROT_EXEC);
    memcpy(at, bytes, len);
    protect(at, len, PROT_READ | PROT_EXEC);
}

int main(void) {
    unsigned char *t = (unsigned char *)target;
    unsigned char saved[8];
    memcpy(saved, t, sizeof saved);
    printf("before %ld\n", hot(200000));
    /* mov eax, 42; ret */
    static const unsigned char forty_two[] = {0xb8, 42, 0, 0, 0, 0xc3};
    write_text(t, forty_two, sizeof forty_two);
    printf("patched %ld\n", hot(200000));
    /* mov eax, edi; ret */
    static const unsigned char identity[] = {0x89, 0xf8, 0xc3};
    write_text(t, identity, sizeof identity);
    printf("patched again %ld\n", hot(200000));
    write_text(t, saved, sizeof saved);
    printf("restored %ld\n", hot(200000));
    return 0;
}
