/* A program that writes to stderr and ends with a non-zero status through a failed check. */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    fprintf(stderr, "diagnostic on stderr: %d args\n", argc);
    fflush(stderr);
    printf("partial output before failure\n");
    if (argc < 100) { fprintf(stderr, "failing with status 7\n"); exit(7); }
    return 0;
}
