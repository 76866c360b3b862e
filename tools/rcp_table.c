// Writes the tables behind Kiln's rcpps/rcpss/rsqrtps/rsqrtss (src/semantics/rcp_rsqrt.bin):
// the CPU's results for the 4,096 inputs 1.m (m = the top 12 significand bits) of rcpss, then
// of rsqrtss, then of rsqrtss on 2 x 1.m; little-endian u32 each. On the CPU that produced the
// checked-in file (AMD EPYC, family 17h and later) the result of every other normal input is
// the table entry with its exponent scaled (rcp: by -e; rsqrt: by -floor(e/2), the odd
// exponents from the second rsqrt table), flushed to zero below the normal range; the program
// checks that claim over every positive normal input before writing, and exits 1 otherwise.
//
//     gcc -O2 -o /tmp/rcp_table tools/rcp_table.c && /tmp/rcp_table src/semantics/rcp_rsqrt.bin
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>

static uint32_t rcp(uint32_t b) {
    return _mm_cvtsi128_si32(_mm_castps_si128(_mm_rcp_ss(_mm_castsi128_ps(_mm_set1_epi32((int)b)))));
}
static uint32_t rsqrt(uint32_t b) {
    return _mm_cvtsi128_si32(_mm_castps_si128(_mm_rsqrt_ss(_mm_castsi128_ps(_mm_set1_epi32((int)b)))));
}
static uint32_t scaled(uint32_t base, int k) {
    int e = (int)(base >> 23 & 0xff) - k;
    if (e < 1) return base & 0x80000000u;
    if (e > 254) return (base & 0x80000000u) | 0x7f800000u;
    return (base & 0x807fffffu) | (uint32_t)e << 23;
}

int main(int argc, char **argv) {
    static uint32_t t[3][4096];
    for (uint32_t i = 0; i < 4096; i++) {
        t[0][i] = rcp(0x3f800000u | i << 11);
        t[1][i] = rsqrt(0x3f800000u | i << 11);
        t[2][i] = rsqrt(0x40000000u | i << 11);
    }
    long bad = 0;
    for (uint32_t b = 0x00800000u; b < 0x7f800000u; b++) {
        int e = (int)(b >> 23) - 127, i = b >> 11 & 4095;
        int k = e >= 0 ? e / 2 : -((1 - e) / 2);
        if (scaled(t[0][i], e) != rcp(b) || scaled(t[1 + e - 2 * k][i], k) != rsqrt(b)) bad++;
    }
    if (bad) {
        fprintf(stderr, "%ld inputs differ from the table model on this CPU\n", bad);
        return 1;
    }
    FILE *f = fopen(argc > 1 ? argv[1] : "rcp_rsqrt.bin", "wb");
    if (!f || fwrite(t, 4, 3 * 4096, f) != 3 * 4096 || fclose(f)) return 1;
    return 0;
}
