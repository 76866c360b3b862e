/* memcpy, memmove, memset, strlen, strchr, strrchr, memchr, memcmp, strcmp, strcpy on every
 * source alignment (0..31), every destination alignment for the copying functions, and lengths
 * 0..300 (every length for the alignment pairs whose sum is a multiple of 7), results folded
 * into one checksum per function. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned char src[1024] __attribute__((aligned(64))), dst[1024] __attribute__((aligned(64)));
static uint64_t h;
static void mix(uint64_t v) { h = (h ^ v) * 0x100000001b3ull; }
static void mixbuf(const unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { uint64_t w; memcpy(&w, p + i, 8); mix(w); }
    for (; i < n; i++) mix(p[i]);
}

int main(void) {
    for (int i = 0; i < 1024; i++) src[i] = (unsigned char)(i * 7 + 13);
    const char *fn[] = {"memcpy", "memmove", "memset", "strlen", "strchr", "memchr", "memcmp", "strcmp", "strcpy"};
    for (int f = 0; f < 9; f++) {
        h = 0xcbf29ce484222325ull;
        for (int sa = 0; sa < 32; sa++)
            for (int da = 0; da < 32; da += (f < 3 ? 1 : 31))
                for (int n = 0; n <= 300; n += (sa + da) % 7 + 1) {
                    memset(dst, 0xa5, 400);
                    unsigned char *s = src + sa, *d = dst + da;
                    switch (f) {
                    case 0: memcpy(d, s, n); mixbuf(dst, n + 64); break;
                    case 1: memcpy(dst, src, 700); memmove(dst + da, dst + sa, n); mixbuf(dst, n + 64); break;
                    case 2: memset(d, n & 0xff, n); mixbuf(dst, n + 64); break;
                    case 3: {
                        unsigned char save = s[n]; s[n] = 0;
                        for (int k = 0; k < n; k++) if (!s[k]) s[k] = 1;
                        mix(strlen((char *)s)); s[n] = save; break;
                    }
                    case 4: {
                        memcpy(d, s, n); d[n] = 0;
                        for (int k = 0; k < n; k++) if (!d[k]) d[k] = 1;
                        int c = (n * 5) & 0xff; if (!c) c = 1;
                        char *p = strchr((char *)d, c); mix(p ? (uint64_t)(p - (char *)d) : 999);
                        p = strrchr((char *)d, c); mix(p ? (uint64_t)(p - (char *)d) : 999);
                        break;
                    }
                    case 5: { void *p = memchr(s, (n * 3) & 0xff, n); mix(p ? (uint64_t)((unsigned char *)p - s) : 999); break; }
                    case 6: {
                        memcpy(d, s, n);
                        if (n) d[(n * 7) % n] ^= (unsigned char)(sa + 1);
                        int r = memcmp(d, s, n); mix(r < 0 ? 1 : r > 0 ? 2 : 3); break;
                    }
                    case 7: {
                        memcpy(d, s, n); d[n] = 0; for (int k = 0; k < n; k++) if (!d[k]) d[k] = 1;
                        char t[400]; memcpy(t, d, n + 1); if (n > 2) t[n / 2]++;
                        int r = strcmp((char *)d, t); mix(r < 0 ? 1 : r > 0 ? 2 : 3); break;
                    }
                    default: {
                        char t[400]; for (int k = 0; k < n; k++) t[k] = (char)(s[k] | 1); t[n] = 0;
                        strcpy((char *)d, t); mixbuf(dst, n + 64); break;
                    }
                    }
                }
        printf("%-8s %016llx\n", fn[f], (unsigned long long)h);
    }
    return 0;
}
