/* SSE3, SSSE3, SSE4.1, SSE4.2 (string compares, crc32), POPCNT, LZCNT, BMI1, BMI2, MOVBE and
 * CMPXCHG16B through compiler intrinsics on pseudo-random data, every result printed (the
 * program runs the instructions unconditionally: the machine running the tests has them). */
#pragma GCC target("sse4.2,popcnt,lzcnt,bmi,bmi2,movbe,cx16")
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint64_t seed = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
    return seed;
}
static __m128i rv(void) { return _mm_set_epi64x((long long)rnd(), (long long)rnd()); }
static __m128i special(int i) {
    /* Vectors with equal, zero, extreme and sign-boundary lanes. */
    switch (i % 4) {
    case 0: return _mm_set1_epi8((char)(rnd() & 0x81));
    case 1: return _mm_set_epi32(0, -1, 0x7fffffff, (int)0x80000000);
    case 2: return _mm_set1_epi16((short)0x8000);
    default: return rv();
    }
}
static uint64_t acc;
static void mix(__m128i v) {
    uint64_t x[2]; memcpy(x, &v, 16);
    acc = (acc ^ x[0]) * 0x100000001b3ull; acc = (acc ^ x[1]) * 0x100000001b3ull;
}
static void mixd(__m128d v) { mix(_mm_castpd_si128(v)); }
static void mixs(__m128 v) { mix(_mm_castps_si128(v)); }
static void report(const char *what) { printf("%-10s %016llx\n", what, (unsigned long long)acc); acc = 0; }

static __m128d rd(void) {
    double d[2];
    for (int i = 0; i < 2; i++) d[i] = ((int64_t)rnd() >> 11) / 65536.0 + (i ? 0.5 : -0.25);
    return _mm_loadu_pd(d);
}
static __m128 rs(void) {
    float f[4];
    for (int i = 0; i < 4; i++) f[i] = (float)((int32_t)rnd() >> 8) / 256.0f + 0.5f * i;
    return _mm_loadu_ps(f);
}

int main(void) {
    for (int i = 0; i < 200; i++) {
        __m128d a = rd(), b = rd();
        __m128 c = rs(), d = rs();
        mixd(_mm_addsub_pd(a, b)); mixd(_mm_hadd_pd(a, b)); mixd(_mm_hsub_pd(a, b));
        mixs(_mm_addsub_ps(c, d)); mixs(_mm_hadd_ps(c, d)); mixs(_mm_hsub_ps(c, d));
        mixd(_mm_movedup_pd(a)); mixs(_mm_movehdup_ps(c)); mixs(_mm_moveldup_ps(c));
        double m[2] = {1.5, -2.5};
        mixd(_mm_loaddup_pd(&m[i & 1]));
        mix(_mm_lddqu_si128((const __m128i *)m));
    }
    report("sse3");
    for (int i = 0; i < 400; i++) {
        __m128i a = special(i), b = (i & 8) ? special(i + 1) : rv();
        mix(_mm_shuffle_epi8(a, b));
        mix(_mm_hadd_epi16(a, b)); mix(_mm_hadd_epi32(a, b)); mix(_mm_hadds_epi16(a, b));
        mix(_mm_hsub_epi16(a, b)); mix(_mm_hsub_epi32(a, b)); mix(_mm_hsubs_epi16(a, b));
        mix(_mm_maddubs_epi16(a, b)); mix(_mm_mulhrs_epi16(a, b));
        mix(_mm_sign_epi8(a, b)); mix(_mm_sign_epi16(a, b)); mix(_mm_sign_epi32(a, b));
        mix(_mm_abs_epi8(a)); mix(_mm_abs_epi16(a)); mix(_mm_abs_epi32(a));
        mix(_mm_alignr_epi8(a, b, 0)); mix(_mm_alignr_epi8(a, b, 5)); mix(_mm_alignr_epi8(a, b, 16));
        mix(_mm_alignr_epi8(a, b, 21)); mix(_mm_alignr_epi8(a, b, 32));
    }
    report("ssse3");
    for (int i = 0; i < 400; i++) {
        __m128i a = special(i), b = (i & 8) ? special(i + 3) : rv();
        mix(_mm_mullo_epi32(a, b)); mix(_mm_mul_epi32(a, b));
        mix(_mm_min_epi8(a, b)); mix(_mm_min_epi32(a, b)); mix(_mm_min_epu16(a, b)); mix(_mm_min_epu32(a, b));
        mix(_mm_max_epi8(a, b)); mix(_mm_max_epi32(a, b)); mix(_mm_max_epu16(a, b)); mix(_mm_max_epu32(a, b));
        mix(_mm_cmpeq_epi64(a, b)); mix(_mm_cmpeq_epi64(a, a)); mix(_mm_packus_epi32(a, b));
        mix(_mm_cvtepi8_epi16(a)); mix(_mm_cvtepi8_epi32(a)); mix(_mm_cvtepi8_epi64(a));
        mix(_mm_cvtepi16_epi32(a)); mix(_mm_cvtepi16_epi64(a)); mix(_mm_cvtepi32_epi64(a));
        mix(_mm_cvtepu8_epi16(a)); mix(_mm_cvtepu8_epi32(a)); mix(_mm_cvtepu8_epi64(a));
        mix(_mm_cvtepu16_epi32(a)); mix(_mm_cvtepu16_epi64(a)); mix(_mm_cvtepu32_epi64(a));
        acc += _mm_testz_si128(a, b) + 2 * _mm_testc_si128(a, b) + 4 * _mm_testnzc_si128(a, b);
        mix(_mm_blend_epi16(a, b, 0xa5)); mixs(_mm_blend_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b), 6));
        mixd(_mm_blend_pd(_mm_castsi128_pd(a), _mm_castsi128_pd(b), 1));
        mix(_mm_blendv_epi8(a, b, rv()));
        mixs(_mm_blendv_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b), _mm_castsi128_ps(rv())));
        mixd(_mm_blendv_pd(_mm_castsi128_pd(a), _mm_castsi128_pd(b), _mm_castsi128_pd(rv())));
        acc += _mm_extract_epi8(a, 13) + _mm_extract_epi16(a, 5) + _mm_extract_epi32(a, 3) +
               (uint64_t)_mm_extract_epi64(a, 1) + (uint64_t)_mm_extract_ps(_mm_castsi128_ps(a), 2);
        mix(_mm_insert_epi8(a, (int)rnd(), 9)); mix(_mm_insert_epi32(a, (int)rnd(), 2));
        mix(_mm_insert_epi64(a, (long long)rnd(), 1));
        mixs(_mm_insert_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b), 0x9c));
        mixs(_mm_insert_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b), 0x71));
        mix(_mm_minpos_epu16(a));
        short ws[8]; uint8_t bs[16]; memcpy(ws, &a, 16); memcpy(bs, &b, 16);
        ws[3] = (short)_mm_extract_epi16(b, 2); bs[7] = (uint8_t)_mm_extract_epi8(a, 15);
        acc += (uint64_t)ws[3] * 3 + bs[7];
        mix(_mm_stream_load_si128(&a));
    }
    report("sse4.1");
    const float fv[] = {2.5f, -2.5f, 3.5f, -0.4f, 1e10f, 0.49999997f, -7.5f, 1.0f};
    const double dv[] = {2.5, -2.5, 3.5000001, -0.5, 1e300, 0.49999999999999994, -1e-310, 4503599627370497.0};
    for (int k = 0; k < 4; k++) {
        __m128 f0 = _mm_loadu_ps(fv + k % 2 * 4), f1 = rs();
        __m128d d0 = _mm_loadu_pd(dv + k * 2), d1 = rd();
        mixs(_mm_round_ps(f0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        mixs(_mm_round_ps(f0, _MM_FROUND_TO_NEG_INF)); mixs(_mm_round_ps(f1, _MM_FROUND_TO_POS_INF));
        mixs(_mm_round_ps(f1, _MM_FROUND_TO_ZERO)); mixs(_mm_round_ss(f1, f0, _MM_FROUND_CUR_DIRECTION));
        mixd(_mm_round_pd(d0, _MM_FROUND_TO_NEAREST_INT)); mixd(_mm_round_pd(d0, _MM_FROUND_TO_NEG_INF));
        mixd(_mm_round_pd(d1, _MM_FROUND_TO_POS_INF)); mixd(_mm_round_pd(d0, _MM_FROUND_TO_ZERO));
        mixd(_mm_round_sd(d1, d0, _MM_FROUND_CUR_DIRECTION));
        acc ^= _mm_getcsr() & 0x3f;
        _mm_setcsr(0x1f80);
    }
    report("round");
    const char *hay = "the quick brown fox jumps over the lazy dog; THE END 0123456789 [brackets] ";
    const char *sets[] = {"aeiou", "az", "AZaz", "09", "fox", "dog", " ", "xyzzy", "the lazy"};
    for (int s = 0; s < 9; s++) {
        __m128i a = _mm_loadu_si128((const __m128i *)sets[s]);
        char pad[32] = {0}; memcpy(pad, sets[s], strlen(sets[s]));
        a = _mm_loadu_si128((const __m128i *)pad);
        for (int off = 0; off + 16 <= (int)strlen(hay); off += 5) {
            __m128i b = _mm_loadu_si128((const __m128i *)(hay + off));
            int la = (int)strlen(sets[s]), lb = 16 - off % 7;
#define MODES(X) X(0x00) X(0x04) X(0x08) X(0x0c) X(0x10) X(0x14) X(0x18) X(0x1c) X(0x30) X(0x34) \
                 X(0x38) X(0x3c) X(0x40) X(0x44) X(0x48) X(0x4c) X(0x01) X(0x0d) X(0x02) X(0x06) X(0x70)
#define ONE(m) acc = acc * 31 + _mm_cmpistri(a, b, m) + 64 * _mm_cmpestri(a, la, b, lb, m); \
               mix(_mm_cmpistrm(a, b, m)); mix(_mm_cmpestrm(a, la, b, lb, m)); \
               acc += _mm_cmpistrc(a, b, m) + 2 * _mm_cmpistrz(a, b, m) + 4 * _mm_cmpistrs(a, b, m) + \
                      8 * _mm_cmpistro(a, b, m) + 16 * _mm_cmpestra(a, la, b, lb, m);
            MODES(ONE)
        }
    }
    report("sse4.2str");
    uint32_t c32 = 0xffffffff; uint64_t c64 = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t v = rnd();
        c32 = _mm_crc32_u8(c32, (uint8_t)v); c32 = _mm_crc32_u16(c32, (uint16_t)v);
        c32 = _mm_crc32_u32(c32, (uint32_t)v); c64 = _mm_crc32_u64(c64 ^ c32, v);
        __m128i a = rv(), b = rv();
        mix(_mm_cmpgt_epi64(a, b)); mix(_mm_cmpgt_epi64(b, a));
    }
    acc ^= c32 ^ c64;
    report("crc32");
    for (int i = 0; i < 2000; i++) {
        uint64_t x = rnd(), y = rnd();
        if (i % 5 == 0) x &= 0xff00ff;
        if (i % 7 == 0) x = 0;
        uint32_t x32 = (uint32_t)x, y32 = (uint32_t)y;
        acc = acc * 7 + (uint64_t)_mm_popcnt_u64(x) + _mm_popcnt_u32(x32) + _lzcnt_u64(x) + _lzcnt_u32(x32) +
              _tzcnt_u64(x) + _tzcnt_u32(x32);
        acc ^= _andn_u64(x, y) + _andn_u32(x32, y32) + _bextr_u64(x, y & 63, (y >> 8) & 63) +
               _bextr_u32(x32, y & 31, (y >> 8) & 31) + _blsi_u64(x) + _blsi_u32(x32) + _blsmsk_u64(x) +
               _blsmsk_u32(x32) + _blsr_u64(x) + _blsr_u32(x32);
        acc ^= _bzhi_u64(x, y & 127) + _bzhi_u32(x32, y & 63) + _pdep_u64(x, y) + _pext_u64(x, y) +
               _pdep_u32(x32, y32) + _pext_u32(x32, y32);
        unsigned long long hi;
        unsigned __int128 wide = (unsigned __int128)x * y;
        acc += _mulx_u64(x, y, &hi) + hi + (uint64_t)wide + (uint64_t)(wide >> 64);
        acc += (x >> (y & 63)) + ((int64_t)x >> (y & 63)) + (x << (y & 63)) + (x32 >> (y & 31)) +
               (uint32_t)((int32_t)x32 >> (y & 31)) + (x32 << (y & 31));
        acc += __builtin_bswap64(x) + __builtin_bswap32(x32);
        volatile uint64_t mem = x; volatile uint32_t m32 = x32; volatile uint16_t m16 = (uint16_t)x;
        acc += __builtin_bswap64(mem) + __builtin_bswap32(m32) + __builtin_bswap16(m16);
        mem = __builtin_bswap64(y); m32 = __builtin_bswap32((uint32_t)y); m16 = __builtin_bswap16((uint16_t)y);
        acc += mem + m32 + m16;
        /* flags from BMI results */
        acc += (_blsr_u64(x) == 0) + 2 * (_andn_u64(x, y) == 0) + 4 * (_bzhi_u64(x, y & 15) == 0);
    }
    report("bmi");
    __int128 cell __attribute__((aligned(16))) = 5;
    for (int i = 0; i < 100; i++) {
        __int128 old = cell, want = i % 3 ? old : old + 1;
        int ok = __sync_bool_compare_and_swap(&cell, want, old * 3 + i);
        acc = acc * 3 + ok + (uint64_t)cell + (uint64_t)(cell >> 64);
        __int128 v = __sync_val_compare_and_swap(&cell, (__int128)7, (__int128)9);
        acc += (uint64_t)v;
    }
    report("cx16");
    return 0;
}
