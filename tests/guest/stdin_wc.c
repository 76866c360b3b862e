/* Reads stdin to the end and counts lines, words and bytes (like wc). */
#include <ctype.h>
#include <stdio.h>
int main(void) {
    long lines = 0, words = 0, bytes = 0; int c, inword = 0;
    unsigned long h = 5381;
    while ((c = getchar()) != EOF) {
        bytes++; h = h * 33 + (unsigned)c;
        if (c == '\n') lines++;
        if (isspace(c)) inword = 0; else if (!inword) { inword = 1; words++; }
    }
    printf("%ld %ld %ld %lx\n", lines, words, bytes, h);
    return 0;
}
