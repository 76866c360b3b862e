/* Struct copies, unions, bitfields, and arrays of structs (compilers use SSE moves here). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
struct rec { char name[24]; int32_t id; uint16_t flags : 5, level : 11; double unused_pad; int64_t total; };
union pun { uint64_t u; uint8_t b[8]; uint32_t w[2]; };
static struct rec make(int i) {
    struct rec r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "record-%03d", i);
    r.id = i * 7; r.flags = i & 31; r.level = (i * 13) & 2047; r.total = (int64_t)i * i * i;
    return r;
}
int main(void) {
    struct rec arr[64];
    for (int i = 0; i < 64; i++) arr[i] = make(i);
    struct rec copy[64];
    memcpy(copy, arr, sizeof arr);
    struct rec t = copy[5]; copy[5] = copy[60]; copy[60] = t;
    long sum = 0;
    for (int i = 0; i < 64; i++) sum += copy[i].id + copy[i].flags + copy[i].level + copy[i].total;
    printf("sum %ld, copy[5] = %s/%d/%u/%u, copy[60] = %s\n", sum, copy[5].name, copy[5].id, copy[5].flags, copy[5].level, copy[60].name);
    union pun p = {.u = 0x0102030405060708ull};
    printf("union bytes %d %d words %x %x\n", p.b[0], p.b[7], p.w[0], p.w[1]);
    return 0;
}
