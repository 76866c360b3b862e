/* rep movs/stos/cmps/scas/lods at every element size, forwards and (with std) backwards. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
static unsigned char src[4096], dst[4096];
static void dump(const char *what) {
    unsigned long h = 0;
    for (int i = 0; i < 4096; i++) h = h * 131 + dst[i];
    printf("%-28s %016lx\n", what, h);
}
int main(void) {
    for (int i = 0; i < 4096; i++) src[i] = (unsigned char)(i * 37 + 11);
    void *d = dst + 3; const void *s = src + 1; size_t n = 1000;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    dump("rep movsb 1000");
    d = dst + 8; s = src + 16; n = 300;
    __asm__ volatile("rep movsw" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    dump("rep movsw 300");
    d = dst; s = src + 4; n = 333;
    __asm__ volatile("rep movsl" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    dump("rep movsd 333");
    d = dst + 64; s = src; n = 100;
    __asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    dump("rep movsq 100");
    d = dst + 4000; s = src + 4000; n = 500;
    __asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    dump("std rep movsb backwards");
    printf("after backwards copy: rdi-dst=%ld rsi-src=%ld\n", (long)((unsigned char *)d - dst), (long)((const unsigned char *)s - src));
    d = dst + 1; n = 777;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(0xab) : "memory");
    dump("rep stosb 777");
    d = dst + 2000; n = 50;
    __asm__ volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(0x1122334455667788ull) : "memory");
    dump("rep stosq 50");
    d = dst; n = 10;
    __asm__ volatile("rep stosw" : "+D"(d), "+c"(n) : "a"(0xbeef) : "memory");
    d = dst + 100; n = 10;
    __asm__ volatile("rep stosl" : "+D"(d), "+c"(n) : "a"(0xcafef00d) : "memory");
    dump("rep stosw/stosl");
    memcpy(dst, src, 4096);
    dst[1234] ^= 1;
    const void *a = src, *b = dst; n = 4096;
    uint64_t fl;
    __asm__ volatile("repe cmpsb\n\tpushfq\n\tpopq %3" : "+S"(a), "+D"(b), "+c"(n), "=r"(fl) : : "cc");
    printf("repe cmpsb stops at %ld, rcx=%zu, flags %03llx\n", (long)((const unsigned char *)a - src - 1), n, (unsigned long long)(fl & 0x8d5));
    const void *p = src; n = 4096;
    __asm__ volatile("repne scasb\n\tpushfq\n\tpopq %2" : "+D"(p), "+c"(n), "=r"(fl) : "a"(src[2500]) : "cc");
    printf("repne scasb finds %ld, rcx=%zu, flags %03llx\n", (long)((const unsigned char *)p - src - 1), n, (unsigned long long)(fl & 0x8d5));
    uint32_t words[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    p = words; n = 8;
    __asm__ volatile("repne scasl" : "+D"(p), "+c"(n) : "a"(6) : "cc");
    printf("repne scasl finds index %ld\n", (long)((const uint32_t *)p - words - 1));
    s = src + 10; uint64_t acc = 0;
    for (int i = 0; i < 4; i++) { uint64_t v; __asm__ volatile("lodsq" : "=a"(v), "+S"(s)); acc ^= v; }
    uint8_t lb; __asm__ volatile("lodsb" : "=a"(lb), "+S"(s));
    printf("lods: %016llx %02x\n", (unsigned long long)acc, lb);
    n = 0; d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(0) : "memory");
    printf("rep with rcx=0 moves nothing: %d\n", d == dst);
    return 0;
}
