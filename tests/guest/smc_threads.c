/* Generated code rewritten by one thread while another keeps calling code on the same page: the
 * writer installs each new version of one function and the caller, told so, calls it at once
 * (the handshake makes the values deterministic); while it waits, the caller keeps calling a
 * second function on that page, which never changes. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

typedef int (*fn_t)(void);

static unsigned char *code;
static atomic_int version; /* written by the writer: the version installed */
static atomic_int seen;    /* written by the caller: the version it has called */

static void emit_const(unsigned char *p, int v) {
    p[0] = 0xb8;
    memcpy(p + 1, &v, 4);
    p[5] = 0xc3;
}

static void *writer(void *arg) {
    (void)arg;
    for (int v = 1; v <= 300; v++) {
        while (atomic_load(&seen) != v - 1)
            ;
        emit_const(code, v * 7 + 1);
        atomic_store(&version, v);
    }
    return NULL;
}

int main(void) {
    code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    emit_const(code, 1);
    emit_const(code + 64, 5);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    long sum = 0, spins_ok = 1;
    for (int v = 1; v <= 300; v++) {
        while (atomic_load(&version) != v) {
            if (((fn_t)(code + 64))() != 5)
                spins_ok = 0;
        }
        sum += ((fn_t)code)();
        atomic_store(&seen, v);
    }
    pthread_join(t, NULL);
    printf("cross-thread rewrite: %ld (the unchanged neighbour kept returning 5: %s)\n", sum, spins_ok ? "yes" : "no");
    return 0;
}
