/* The smallest useful program: formatted output and an exit status. */
#include <stdio.h>
int main(int argc, char **argv) {
    printf("hello, world: %d argument(s), first is \"%s\"\n", argc - 1, argc > 1 ? argv[1] : "");
    return 0;
}
