/* Control flow that no direct branch names: a switch compiled to a jump table, a table of
 * function pointers, a callback handed to the C library (qsort), computed gotos, and calls
 * through pointers chosen at run time. `kiln bake` must find all of it from the file alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned step(unsigned op, unsigned x) {
    switch (op % 12) {
    case 0: return x * 3 + 1;
    case 1: return x ^ 0x5a5a5a5au;
    case 2: return (x << 7) | (x >> 25);
    case 3: return x - 0x1234567u;
    case 4: return x / 3 + 17;
    case 5: return ~x;
    case 6: return x * x;
    case 7: return x + (x >> 3);
    case 8: return x & 0xfff0fff0u;
    case 9: return x | 0x01010101u;
    case 10: return x % 1000003u;
    default: return x + op;
    }
}

static unsigned f_add(unsigned a, unsigned b) { return a + b; }
static unsigned f_xor(unsigned a, unsigned b) { return a ^ b; }
static unsigned f_mul(unsigned a, unsigned b) { return a * (b | 1); }
static unsigned f_rot(unsigned a, unsigned b) { return (a << (b & 31)) | (a >> ((32 - (b & 31)) & 31)); }
static unsigned (*const ops[])(unsigned, unsigned) = {f_add, f_xor, f_mul, f_rot};

static int by_value(const void *a, const void *b) {
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

/* A tiny bytecode machine dispatched by computed gotos. */
static unsigned run(const unsigned char *code, unsigned acc) {
    static void *const labels[] = {&&op_inc, &&op_dbl, &&op_neg, &&op_end};
    const unsigned char *pc = code;
    goto *labels[*pc++];
op_inc:
    acc += 1;
    goto *labels[*pc++];
op_dbl:
    acc *= 2;
    goto *labels[*pc++];
op_neg:
    acc = -acc;
    goto *labels[*pc++];
op_end:
    return acc;
}

int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 20000;
    unsigned x = 1, acc = 0;
    unsigned *values = malloc(sizeof(unsigned) * 512);
    for (unsigned i = 0; i < n; i++) {
        x = step(i * 7 + (x & 15), x);
        acc = ops[x & 3](acc, x);
        values[i & 511] = x;
    }
    qsort(values, 512, sizeof(unsigned), by_value);
    static const unsigned char program[] = {0, 1, 1, 0, 2, 1, 0, 3};
    for (unsigned i = 0; i < n / 100; i++)
        acc = run(program, acc);
    char line[64];
    snprintf(line, sizeof line, "%08x %08x %08x %08x", x, acc, values[0], values[511]);
    printf("%s (%zu)\n", line, strlen(line));
    return 0;
}
