/* Code that changes: generated code rewritten in place in an RWX page, with W^X toggling,
 * through a second (memfd) mapping, by read(2), by mapping another file at the same address,
 * and code sharing its page with data it writes. Each part prints what the code returned. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int (*fn_t)(void);

/* mov eax, imm32; ret */
static void emit_const(unsigned char *p, int v) {
    p[0] = 0xb8;
    memcpy(p + 1, &v, 4);
    p[5] = 0xc3;
}

static void *map(int prot) {
    void *p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        _exit(1);
    }
    return p;
}

static void rwx_rewrite(void) {
    unsigned char *p = map(PROT_READ | PROT_WRITE | PROT_EXEC);
    long sum = 0;
    for (int i = 0; i < 200; i++) {
        emit_const(p, i * 3 - 7 * (i & 1));
        sum += ((fn_t)p)();
    }
    /* Rewrite the opcode too: a different instruction at the same address. */
    p[0] = 0x31, p[1] = 0xc0, p[2] = 0xc3; /* xor eax, eax; ret */
    sum += ((fn_t)p)() + 1;
    printf("rwx rewrite: %ld\n", sum);
    munmap(p, 4096);
}

static void wx_toggle(void) {
    unsigned char *p = map(PROT_READ | PROT_WRITE);
    long sum = 0;
    for (int i = 0; i < 200; i++) {
        mprotect(p, 4096, PROT_READ | PROT_WRITE);
        emit_const(p, i * 5 + 11);
        mprotect(p, 4096, PROT_READ | PROT_EXEC);
        sum += ((fn_t)p)();
    }
    printf("w^x toggle: %ld\n", sum);
    munmap(p, 4096);
}

static void dual_mapping(void) {
    int fd = memfd_create("jit", 0);
    if (fd < 0 || ftruncate(fd, 4096) != 0) {
        perror("memfd");
        return;
    }
    unsigned char *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *x = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    long sum = 0;
    for (int i = 0; i < 200; i++) {
        emit_const(w + 64, i * i);
        sum += ((fn_t)(x + 64))();
    }
    printf("dual mapping: %ld\n", sum);
    munmap(w, 4096);
    munmap(x, 4096);
    close(fd);
}

static void read_into_code(void) {
    unsigned char *p = map(PROT_READ | PROT_WRITE | PROT_EXEC);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return;
    }
    long sum = 0;
    for (int i = 0; i < 50; i++) {
        unsigned char code[6];
        emit_const(code, 1000 + i);
        if (write(fds[1], code, 6) != 6 || read(fds[0], p + 128, 6) != 6) {
            perror("pipe io");
            return;
        }
        sum += ((fn_t)(p + 128))();
    }
    printf("read(2) into code: %ld\n", sum);
    close(fds[0]);
    close(fds[1]);
    munmap(p, 4096);
}

/* Two files of code mapped one after the other at the same address (as dlclose then dlopen of
 * another library can do). */
static void files_at_one_address(void) {
    char path[] = "/tmp/kiln-smc-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        return;
    }
    unlink(path);
    unsigned char page[4096];
    memset(page, 0xcc, sizeof page);
    void *at = NULL;
    long sum = 0;
    for (int i = 0; i < 2; i++) {
        emit_const(page, 4242 + i * 100);
        if (pwrite(fd, page, sizeof page, 0) != (ssize_t)sizeof page) {
            perror("pwrite");
            return;
        }
        void *p = mmap(at, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | (at ? MAP_FIXED : 0), fd, 0);
        if (p == MAP_FAILED) {
            perror("mmap file");
            return;
        }
        at = p;
        sum += ((fn_t)p)() * (i + 1);
        munmap(p, 4096);
    }
    printf("files at one address: %ld\n", sum);
    close(fd);
}

/* A function that counts its calls in a word on its own page. */
static void code_and_data(void) {
    unsigned char *p = map(PROT_READ | PROT_WRITE | PROT_EXEC);
    static const unsigned char body[] = {
        0x8b, 0x05, 0xfa, 0x07, 0x00, 0x00, /* mov eax, [rip+0x7fa] -> p+0x800 */
        0x83, 0xc0, 0x01,                   /* add eax, 1 */
        0x89, 0x05, 0xf1, 0x07, 0x00, 0x00, /* mov [rip+0x7f1], eax -> p+0x800 */
        0xc3,                               /* ret */
    };
    memcpy(p, body, sizeof body);
    long last = 0;
    for (int i = 0; i < 20000; i++)
        last = ((fn_t)p)();
    printf("code and data on one page: %ld %d\n", last, *(int *)(p + 0x800));
    munmap(p, 4096);
}

int main(void) {
    rwx_rewrite();
    wx_toggle();
    dual_mapping();
    read_into_code();
    files_at_one_address();
    code_and_data();
    return 0;
}
