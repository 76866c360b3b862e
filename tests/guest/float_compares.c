// Float comparisons whose flags feed branches, setcc and cmov: every relation, ordered and
// unordered (the isless family), on doubles and floats, over pairs of ordinary values, equal
// values, zeros of both signs, infinities, denormals and NaNs. Compiled code turns a
// ucomisd/comisd whose operands are ordered into one compare and branch; the rest must agree.
#include <math.h>
#include <stdint.h>
#include <stdio.h>

static volatile double dvals[] = {
    1.5, -2.25, 3.0, 3.0, 0.0, -0.0, 1e-310, -1e-310, 1e300, -1e300, INFINITY, -INFINITY, NAN, 7.0, 6.999999999,
};
static volatile float fvals[] = {
    1.5f, -2.25f, 3.0f, 3.0f, 0.0f, -0.0f, 1e-40f, -1e-40f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN, 7.0f, 6.9999f,
};
#define N (sizeof dvals / sizeof dvals[0])

// Each relation both as a branch and as a value, so the compiler emits jcc, setcc and cmov.
#define RELATIONS(a, b, h)                                                                  \
    do {                                                                                       \
        if (a < b) h = h * 31 + 1;                                                             \
        if (a <= b) h = h * 31 + 2;                                                            \
        if (a > b) h = h * 31 + 3;                                                             \
        if (a >= b) h = h * 31 + 4;                                                            \
        if (a == b) h = h * 31 + 5;                                                            \
        if (a != b) h = h * 31 + 6;                                                            \
        if (isless(a, b)) h = h * 31 + 7;                                                      \
        if (isgreaterequal(a, b)) h = h * 31 + 8;                                              \
        if (islessgreater(a, b)) h = h * 31 + 9;                                               \
        if (isunordered(a, b)) h = h * 31 + 10;                                                \
        h += (a < b) + 2 * (a == b) + 4 * (a > b) + 8 * (a >= b) + 16 * isunordered(a, b);     \
        h = h * 7 + (a > b ? 3u : 1u) + (a <= b ? 5u : 11u) + (a != b ? 13u : 17u);             \
    } while (0)

// Every relation over every pair of `vals`, of type T, folded into h.
#define SWEEP(name, T, vals)                                                                   \
    static uint64_t name(uint64_t h) {                                                         \
        for (unsigned i = 0; i < N; i++)                                                       \
            for (unsigned j = 0; j < N; j++) {                                                 \
                T a = vals[i], b = vals[j];                                                    \
                RELATIONS(a, b, h);                                                            \
            }                                                                                  \
        return h;                                                                              \
    }

SWEEP(doubles, double, dvals)
SWEEP(floats, float, fvals)

// A hot loop that compares computed values: the compiled loop takes the compare-and-branch.
static int crossings(int n) {
    int count = 0;
    double x = 0.5, y = 0.25;
    for (int i = 0; i < n; i++) {
        x = x * 3.7 * (1.0 - x);
        y = y * 3.9 * (1.0 - y);
        if (x > y) count += 1;
        if (x <= 0.5) count += 2;
        count += x >= y;
    }
    return count;
}

int main(void) {
    uint64_t h = 0;
    for (int round = 0; round < 3; round++) h = floats(doubles(h));
    printf("%016llx %d\n", (unsigned long long)h, crossings(100000));
    return 0;
}
