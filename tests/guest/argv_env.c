/* argv and envp reach the guest intact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
extern char **environ;
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("argv[%d] = \"%s\" (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    int n = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "GUEST_", 6) == 0) { printf("env %s\n", *e); n++; }
    printf("GUEST_ALPHA via getenv: %s\n", getenv("GUEST_ALPHA") ? getenv("GUEST_ALPHA") : "(unset)");
    printf("%d GUEST_ variables\n", n);
    return argc;
}
