/* Robust mutexes: a thread that dies holding one leaves it to the next locker with
 * EOWNERDEAD (whether that locker was already waiting or comes later); the mutex is made
 * consistent and works normally afterwards. A non-robust list entry and a second robust
 * mutex held at exit are handled in the same walk. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t m1, m2;
static sem_t locked;

static void *owner(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m1);
    pthread_mutex_lock(&m2);
    sem_post(&locked);
    usleep(20000); /* let main block on m1 */
    return 0;      /* dies holding both */
}

static void init(pthread_mutex_t *m) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &a);
}

int main(void) {
    init(&m1); init(&m2);
    sem_init(&locked, 0, 0);
    for (int round = 0; round < 3; round++) {
        pthread_t t;
        pthread_create(&t, 0, owner, 0);
        sem_wait(&locked);
        int r = pthread_mutex_lock(&m1); /* blocks until the owner dies */
        printf("round %d: waiting lock -> %s\n", round, r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
        pthread_join(t, 0);
        r = pthread_mutex_lock(&m2); /* owner already dead */
        printf("round %d: later lock -> %s\n", round, r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
        printf("consistent: %d %d\n", pthread_mutex_consistent(&m1), pthread_mutex_consistent(&m2));
        pthread_mutex_unlock(&m1); pthread_mutex_unlock(&m2);
        printf("relock: %d %d\n", pthread_mutex_lock(&m1), pthread_mutex_trylock(&m2));
        pthread_mutex_unlock(&m2); pthread_mutex_unlock(&m1);
    }
    return 0;
}
