/* dlopen one library, call into it, dlclose it, then dlopen another whose function has the same
 * name and shape but another result, several times over: each call must run the code of the
 * library loaded at that moment (a loader may put the second at the first one's address). */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: dlopen_swap LIB_A LIB_B\n");
        return 2;
    }
    long sum = 0;
    for (int round = 0; round < 6; round++) {
        const char *path = argv[1 + (round & 1)];
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        int (*value)(int) = (int (*)(int))dlsym(h, "value");
        if (!value) {
            fprintf(stderr, "dlsym: %s\n", dlerror());
            return 1;
        }
        int v = 0;
        for (int i = 0; i < 1000; i++)
            v += value(i);
        printf("round %d (%s): %d\n", round, round & 1 ? "B" : "A", v);
        sum += v;
        dlclose(h);
    }
    printf("sum %ld\n", sum);
    return 0;
}
