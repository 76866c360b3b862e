/* Code that rewrites an instruction a few bytes ahead of itself and runs into it at once, in
 * the same function, after that function ran enough to be translated: with a plain store and
 * with rep movsb. Each round copies the function into a fresh page, runs it without writing,
 * then once writing a new immediate into the `mov eax, imm32` it falls through to; what every
 * call returned is printed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef int (*fn_t)(int value, int write);

/* Both: if write is non-zero, put value into the immediate below, then return the immediate. */
__asm__(".text\n"
        ".globl store_ahead, store_ahead_end, movs_ahead, movs_ahead_end\n"
        "store_ahead:\n"
        "    test %esi, %esi\n"
        "    jz 1f\n"
        "    lea 2f(%rip), %rax\n"
        "    mov %edi, (%rax)\n"
        "1:  .byte 0xb8\n"
        "2:  .long 7\n"
        "    ret\n"
        "store_ahead_end:\n"
        "movs_ahead:\n"
        "    test %esi, %esi\n"
        "    jz 1f\n"
        "    mov %edi, -8(%rsp)\n"
        "    lea -8(%rsp), %rsi\n"
        "    lea 2f(%rip), %rdi\n"
        "    mov $4, %ecx\n"
        "    rep movsb\n"
        "1:  .byte 0xb8\n"
        "2:  .long 7\n"
        "    ret\n"
        "movs_ahead_end:\n");

extern char store_ahead[], store_ahead_end[], movs_ahead[], movs_ahead_end[];

static void rounds(const char *name, const char *start, const char *end) {
    for (int round = 0; round < 4; round++) {
        unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            exit(1);
        }
        memcpy(p, start, end - start);
        fn_t f = (fn_t)p;
        long before = 0;
        for (int i = 0; i < 300; i++)
            before += f(i, 0);
        int written = f(1000 + round, 1);
        int after = f(0, 0);
        printf("%s round %d: %ld then %d then %d\n", name, round, before, written, after);
        /* Kept mapped: the next round's page is another, which runs translated code for the
         * first time (a page rewritten over and over is watched differently). */
    }
}

int main(void) {
    rounds("store", store_ahead, store_ahead_end);
    rounds("rep movsb", movs_ahead, movs_ahead_end);
    return 0;
}
