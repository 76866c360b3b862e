/* crc32 (table-driven and bitwise) of generated data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
static uint32_t table[256];
int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], 0, 10) : (1 << 20);
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    unsigned char *buf = malloc(n);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; buf[i] = (unsigned char)x; }
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
    uint32_t crc2 = 0xffffffffu;
    for (size_t i = 0; i < n / 16; i++) {
        crc2 ^= buf[i];
        for (int k = 0; k < 8; k++) crc2 = (crc2 >> 1) ^ (0xEDB88320u & -(crc2 & 1));
    }
    printf("crc32 of %zu bytes: %08x, bitwise of first %zu: %08x\n", n, ~crc, n / 16, ~crc2);
    free(buf);
    return 0;
}
