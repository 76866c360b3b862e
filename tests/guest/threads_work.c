/* Four threads, each running its own deterministic workload (an integer hash over a private
 * buffer), joined and printed in order: the per-thread results do not depend on scheduling. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4

struct job {
    int id;
    uint64_t rounds;
    uint64_t result;
};

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static void *work(void *arg) {
    struct job *j = arg;
    uint32_t buf[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (uint32_t)(i * 2654435761u) ^ (uint32_t)j->id;
    uint64_t h = (uint64_t)j->id;
    for (uint64_t r = 0; r < j->rounds; r++) {
        for (int i = 0; i < 256; i++) {
            buf[i] = buf[i] * 1664525u + 1013904223u + (uint32_t)r;
            h = mix(h, buf[i]);
        }
    }
    j->result = h;
    return NULL;
}

int main(int argc, char **argv) {
    uint64_t rounds = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000;
    pthread_t t[THREADS];
    struct job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct job){.id = i + 1, .rounds = rounds * (uint64_t)(i + 1)};
        if (pthread_create(&t[i], NULL, work, &jobs[i]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        printf("thread %d: %016llx\n", jobs[i].id, (unsigned long long)jobs[i].result);
    }
    return 0;
}
