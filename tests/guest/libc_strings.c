/* libc's vectorised string and memory functions on many alignments and lengths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static char a[1024], b[1024];
int main(void) {
    unsigned long h = 0;
    for (int al = 0; al < 16; al++)
        for (int len = 0; len < 200; len += (len < 40 ? 1 : 7)) {
            for (int i = 0; i < 1024; i++) a[i] = (char)('a' + (i * 7 + al) % 26), b[i] = 0;
            a[al + len] = 0;
            h = h * 33 + strlen(a + al);
            memcpy(b + (al * 3) % 16, a + al, len + 1);
            h = h * 33 + (unsigned)memcmp(b + (al * 3) % 16, a + al, len + 1);
            h = h * 33 + (unsigned)strcmp(b + (al * 3) % 16, a + al);
            char *c = strchr(a + al, 'q');
            h = h * 33 + (c ? (unsigned long)(c - a) : 999);
            char *r = strrchr(a + al, 'e');
            h = h * 33 + (r ? (unsigned long)(r - a) : 999);
            memmove(a + al + 1, a + al, len);
            memset(b + al, 'x', len);
            h = h * 33 + (unsigned char)b[al + len / 2] + (unsigned char)a[al + len];
            void *m = memchr(a, 'z', al + len);
            h = h * 33 + (m ? (unsigned long)((char *)m - a) : 777);
            if (len > 2) {
                b[al + len - 1] = 'y';
                h = h * 33 + (unsigned)(memcmp(a + al, b + al, len) > 0);
            }
        }
    printf("string function hash %lx\n", h);
    char buf[256];
    strcpy(buf, "Kiln ");
    strcat(buf, "runs ");
    strncat(buf, "x86-64 programs, truncated here", 14);
    printf("%s (%zu) strstr=%s strspn=%zu strcspn=%zu\n", buf, strlen(buf), strstr(buf, "runs"), strspn(buf, "Kiln"), strcspn(buf, "-"));
    char *dup = strdup(buf);
    printf("strdup equal: %d, strncmp: %d\n", strcmp(dup, buf) == 0, strncmp("abcdef", "abcxyz", 3));
    free(dup);
    char tok[] = "alpha,beta,,gamma;delta";
    for (char *t = strtok(tok, ",;"); t; t = strtok(NULL, ",;")) printf("token %s\n", t);
    return 0;
}
