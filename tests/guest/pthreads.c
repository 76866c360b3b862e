/* Eight threads: mutexes, a condition variable, C11 atomics, join results. */
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#define N 8
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long counter; static atomic_long acounter; static int ready;
static void *work(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 20000; i++) { pthread_mutex_lock(&m); counter++; pthread_mutex_unlock(&m); atomic_fetch_add(&acounter, 2); }
    pthread_mutex_lock(&m); ready++; pthread_cond_broadcast(&cv); pthread_mutex_unlock(&m);
    return (void *)(id * 10);
}
int main(void) {
    pthread_t t[N]; long sum = 0;
    for (long i = 0; i < N; i++) pthread_create(&t[i], 0, work, (void *)i);
    pthread_mutex_lock(&m); while (ready < N) pthread_cond_wait(&cv, &m); pthread_mutex_unlock(&m);
    for (int i = 0; i < N; i++) { void *r; pthread_join(t[i], &r); sum += (long)r; }
    printf("counter %ld atomic %ld joined-sum %ld\n", counter, (long)acounter, sum);
    return 0;
}
