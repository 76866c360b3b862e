/* Jump tables (switch), indirect calls through function pointers, and computed gotos. */
#include <stdio.h>
typedef long (*op_fn)(long, long);
static long add(long a, long b) { return a + b; }
static long sub(long a, long b) { return a - b; }
static long mul(long a, long b) { return a * b; }
static long band(long a, long b) { return a & b; }
static long shl(long a, long b) { return a << (b & 31); }
static const op_fn ops[] = {add, sub, mul, band, shl};
static const char *name(int k) {
    switch (k) {
    case 0: return "zero"; case 1: return "one"; case 2: return "two"; case 3: return "three";
    case 4: return "four"; case 5: return "five"; case 6: return "six"; case 7: return "seven";
    case 8: return "eight"; case 9: return "nine"; case 10: return "ten"; default: return "many";
    }
}
static long vm(const unsigned char *code) {
    static void *labels[] = {&&op_push, &&op_add, &&op_mul, &&op_halt};
    long stack[16], *sp = stack;
    const unsigned char *pc = code;
#define NEXT goto *labels[*pc++]
    NEXT;
op_push: *sp++ = *pc++; NEXT;
op_add: sp--; sp[-1] += sp[0]; NEXT;
op_mul: sp--; sp[-1] *= sp[0]; NEXT;
op_halt: return sp[-1];
}
int main(void) {
    long acc = 1;
    for (int i = 0; i < 40; i++) {
        acc = ops[i % 5](acc, i + 3) % 1000003;
        printf("%s ", name(i % 13));
    }
    printf("\nacc = %ld\n", acc);
    const unsigned char prog[] = {0, 6, 0, 7, 2, 0, 100, 1, 3};
    printf("vm computes %ld\n", vm(prog));
    return 0;
}
