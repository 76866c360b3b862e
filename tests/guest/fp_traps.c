/* SSE floating-point exceptions unmasked in MXCSR become SIGFPE (#XM): the si_code names the
 * exception, the faulting instruction writes no result, MXCSR shows the flags in the handler;
 * the handler runs with the default MXCSR. Scalar and packed operations, conversions; at the
 * end an unmasked divide by zero with no handler ends the process. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <xmmintrin.h>
#include <emmintrin.h>

static sigjmp_buf jb;
static volatile int got_code;
static volatile unsigned handler_mxcsr, fault_mxcsr;

static void on_fpe(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    got_code = si->si_code;
    handler_mxcsr = _mm_getcsr();
    ucontext_t *uc = ctx;
    fault_mxcsr = uc->uc_mcontext.fpregs->mxcsr;
    siglongjmp(jb, 1);
}

static volatile double d_one = 1.0, d_zero = 0.0, d_big = 1e308, d_small = 1e-308, d_three = 3.0, d_neg = -1.0;

#define TRY(name, unmask, expr)                                                                     \
    do {                                                                                            \
        volatile double r = 7.0;                                                                    \
        got_code = 0;                                                                               \
        if (sigsetjmp(jb, 1) == 0) {                                                                \
            _mm_setcsr(0x1f80 & ~(unmask));                                                        \
            r = (expr);                                                                             \
        }                                                                                           \
        unsigned after = _mm_getcsr();                                                              \
        _mm_setcsr(0x1f80);                                                                         \
        printf("%-22s code %d result %g mxcsr at fault %04x in handler %04x after %04x\n", name,    \
               got_code, (double)r, got_code ? fault_mxcsr : 0, got_code ? handler_mxcsr : 0, after); \
    } while (0)

static double vdiv(double a, double b) {
    __m128d x = _mm_set_pd(1.0, a), y = _mm_set_pd(1.0, b);
    return _mm_cvtsd_f64(_mm_div_sd(x, y));
}
static double pdiv(double a, double b) {
    __m128d x = _mm_set_pd(a, 2.0), y = _mm_set_pd(b, 4.0);
    __m128d q = _mm_div_pd(x, y);
    return _mm_cvtsd_f64(q) + _mm_cvtsd_f64(_mm_unpackhi_pd(q, q));
}
static double vsqrt(double a) { return _mm_cvtsd_f64(_mm_sqrt_sd(_mm_set_sd(0), _mm_set_sd(a))); }
static double vcvt(double a) { return (double)_mm_cvtsd_si32(_mm_set_sd(a)); }
static double vmul(double a, double b) { return _mm_cvtsd_f64(_mm_mul_sd(_mm_set_sd(a), _mm_set_sd(b))); }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpe;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGFPE, &sa, 0);
    TRY("divide by zero", 0x200, vdiv(d_one, d_zero));
    TRY("divide, masked", 0, vdiv(d_one, d_zero));
    TRY("invalid 0/0", 0x80, vdiv(d_zero, d_zero));
    TRY("invalid sqrt(-1)", 0x80, vsqrt(d_neg));
    TRY("overflow", 0x400, vmul(d_big, d_big));
    TRY("overflow, OE masked", 0x1000, vmul(d_big, d_big));
    TRY("underflow", 0x800, vmul(d_small, d_small));
    TRY("inexact", 0x1000, vdiv(d_one, d_three));
    TRY("packed divide by zero", 0x200, pdiv(d_one, d_zero));
    TRY("packed, all fine", 0x200, pdiv(d_one, d_three));
    TRY("cvtsd2si invalid", 0x80, vcvt(d_big));
    TRY("denormal operand", 0x100, vmul(d_small * 1e-10, d_three));
    fflush(stdout);
    // No handler: the process ends with SIGFPE.
    signal(SIGFPE, SIG_DFL);
    _mm_setcsr(0x1f80 & ~0x200);
    printf("%g\n", vdiv(d_one, d_zero));
    return 0;
}
