/* SSE2 integer and move instructions through intrinsics, on varied inputs: every lane width,
 * saturation edges, shuffles, shifts by immediates and by registers, movemasks. */
#include <emmintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
static void show(const char *name, __m128i v) {
    uint64_t q[2];
    memcpy(q, &v, 16);
    printf("%-10s %016llx%016llx\n", name, (unsigned long long)q[1], (unsigned long long)q[0]);
}
int main(void) {
    uint8_t seed[64];
    uint32_t x = 0x12345678;
    for (int i = 0; i < 64; i++) { x = x * 1664525 + 1013904223; seed[i] = (uint8_t)(x >> 24); }
    seed[3] = 0x80; seed[4] = 0x7f; seed[5] = 0xff; seed[6] = 0;
    for (int round = 0; round < 4; round++) {
        __m128i a = _mm_loadu_si128((const __m128i *)(seed + round * 8));
        __m128i b = _mm_loadu_si128((const __m128i *)(seed + 32 + round * 5));
        printf("round %d\n", round);
        show("and", _mm_and_si128(a, b)); show("or", _mm_or_si128(a, b)); show("xor", _mm_xor_si128(a, b));
        show("andnot", _mm_andnot_si128(a, b));
        show("add8", _mm_add_epi8(a, b)); show("add16", _mm_add_epi16(a, b)); show("add32", _mm_add_epi32(a, b));
        show("add64", _mm_add_epi64(a, b)); show("sub8", _mm_sub_epi8(a, b)); show("sub16", _mm_sub_epi16(a, b));
        show("sub32", _mm_sub_epi32(a, b)); show("sub64", _mm_sub_epi64(a, b));
        show("cmpeq8", _mm_cmpeq_epi8(a, _mm_shuffle_epi32(a, 0x1b))); show("cmpeq16", _mm_cmpeq_epi16(a, b));
        show("cmpeq32", _mm_cmpeq_epi32(a, a)); show("cmpgt8", _mm_cmpgt_epi8(a, b));
        show("cmpgt16", _mm_cmpgt_epi16(a, b)); show("cmpgt32", _mm_cmpgt_epi32(a, b));
        show("minu8", _mm_min_epu8(a, b)); show("maxu8", _mm_max_epu8(a, b));
        show("mins16", _mm_min_epi16(a, b)); show("maxs16", _mm_max_epi16(a, b));
        show("addsu8", _mm_adds_epu8(a, b)); show("addsu16", _mm_adds_epu16(a, b));
        show("subsu8", _mm_subs_epu8(a, b)); show("subsu16", _mm_subs_epu16(a, b));
        show("adds8", _mm_adds_epi8(a, b)); show("adds16", _mm_adds_epi16(a, b));
        show("subs8", _mm_subs_epi8(a, b)); show("subs16", _mm_subs_epi16(a, b));
        show("avg8", _mm_avg_epu8(a, b)); show("avg16", _mm_avg_epu16(a, b));
        show("mullo16", _mm_mullo_epi16(a, b)); show("mulhi16", _mm_mulhi_epi16(a, b));
        show("mulhiu16", _mm_mulhi_epu16(a, b)); show("madd", _mm_madd_epi16(a, b));
        show("mulu32", _mm_mul_epu32(a, b)); show("sad", _mm_sad_epu8(a, b));
        show("packus", _mm_packus_epi16(a, b)); show("packs16", _mm_packs_epi16(a, b));
        show("packs32", _mm_packs_epi32(a, b));
        show("unlo8", _mm_unpacklo_epi8(a, b)); show("unlo16", _mm_unpacklo_epi16(a, b));
        show("unlo32", _mm_unpacklo_epi32(a, b)); show("unlo64", _mm_unpacklo_epi64(a, b));
        show("unhi8", _mm_unpackhi_epi8(a, b)); show("unhi16", _mm_unpackhi_epi16(a, b));
        show("unhi32", _mm_unpackhi_epi32(a, b)); show("unhi64", _mm_unpackhi_epi64(a, b));
        show("shuf32", _mm_shuffle_epi32(a, 0x9c)); show("shuflo", _mm_shufflelo_epi16(a, 0x4e));
        show("shufhi", _mm_shufflehi_epi16(a, 0xe1));
        show("shufps", _mm_castps_si128(_mm_shuffle_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b), 0x72)));
        show("slldq3", _mm_slli_si128(a, 3)); show("srldq5", _mm_srli_si128(a, 5)); show("srldq15", _mm_srli_si128(a, 15));
        show("sll16", _mm_slli_epi16(a, 3)); show("sll32", _mm_slli_epi32(a, 17)); show("sll64", _mm_slli_epi64(a, 33));
        show("srl16", _mm_srli_epi16(a, 15)); show("srl32", _mm_srli_epi32(a, 1)); show("srl64", _mm_srli_epi64(a, 63));
        show("sra16", _mm_srai_epi16(a, 4)); show("sra32", _mm_srai_epi32(a, 31));
        volatile int cnt = 5 + round * 7;
        __m128i c = _mm_cvtsi32_si128(cnt);
        show("sllv16", _mm_sll_epi16(a, c)); show("srlv32", _mm_srl_epi32(a, c)); show("srav16", _mm_sra_epi16(a, c));
        show("sllv64", _mm_sll_epi64(a, c));
        printf("movemask8 %04x movemaskps %x movemaskpd %x extract16 %04x\n", _mm_movemask_epi8(a),
               _mm_movemask_ps(_mm_castsi128_ps(b)), _mm_movemask_pd(_mm_castsi128_pd(a)), _mm_extract_epi16(b, 5));
        show("insert16", _mm_insert_epi16(a, 0xbeef, 3));
        show("cvtsi64", _mm_cvtsi64_si128((long long)0x0123456789abcdefull + round));
        printf("cvtsi128 %llx %x\n", (unsigned long long)_mm_cvtsi128_si64(b), _mm_cvtsi128_si32(a));
        show("movq", _mm_move_epi64(b));
        uint8_t out[40] = {0};
        _mm_storeu_si128((__m128i *)(out + 1 + round), a);
        _mm_storel_epi64((__m128i *)(out + 20), b);
        show("stored", _mm_loadu_si128((const __m128i *)(out + 2)));
        show("loadl", _mm_loadl_epi64((const __m128i *)(out + 20)));
    }
    return 0;
}
