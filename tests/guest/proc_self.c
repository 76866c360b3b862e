/* The guest view of /proc/self/maps (with [stack]) and /proc/self/auxv. */
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
int main(void) {
    FILE *f = fopen("/proc/self/maps", "r"); char line[256]; int n = 0, stack = 0;
    while (fgets(line, sizeof line, f)) { n++; if (strstr(line, "[stack]")) stack = 1; }
    fclose(f);
    printf("maps lines > 3: %d, has [stack]: %d\n", n > 3, stack);
    f = fopen("/proc/self/auxv", "rb"); unsigned long kv[2]; int pagesz = 0;
    while (fread(kv, sizeof kv, 1, f) == 1 && kv[0]) if (kv[0] == AT_PAGESZ) pagesz = (int)kv[1];
    fclose(f);
    printf("auxv AT_PAGESZ %d, getauxval agrees %d\n", pagesz, getauxval(AT_PAGESZ) == (unsigned long)pagesz);
    return 0;
}
