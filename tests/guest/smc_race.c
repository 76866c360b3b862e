/* Data written by one thread on pages whose code another thread keeps calling: every such page
 * is write-protected when its code is translated, and the writer's stores race with that
 * protection (the fault must find the page Kiln's, never reach the guest as SIGSEGV). A page
 * written again and again becomes one whose code is checked at entry, so many pages are used. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#define PAGES 2000
static unsigned char *code;
static atomic_int cur = -1, done;
static void *writer(void *a) {
    (void)a;
    while (!atomic_load(&done)) {
        int p = atomic_load(&cur);
        if (p < 0) continue;
        volatile unsigned char *d = code + (long)p * 4096 + 2048;
        for (int i = 0; i < 64; i++) d[i & 63] = (unsigned char)i;
    }
    return NULL;
}
int main(void) {
    code = mmap(NULL, 4096L * PAGES, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int p = 0; p < PAGES; p++) { /* mov eax, p; ret */
        unsigned char *c = code + (long)p * 4096;
        c[0] = 0xb8;
        memcpy(c + 1, &p, 4);
        c[5] = 0xc3;
    }
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    long sum = 0;
    for (int p = 0; p < PAGES; p++) {
        atomic_store(&cur, p);
        for (int k = 0; k < 200; k++) sum += ((int (*)(void))(code + (long)p * 4096))();
    }
    atomic_store(&done, 1);
    pthread_join(t, NULL);
    printf("%ld\n", sum);
    return 0;
}
