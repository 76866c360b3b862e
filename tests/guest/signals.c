/* Signal handlers with siginfo, raise, alarm and pause, an interval timer interrupting a busy
 * loop, masks, SIG_IGN, FP state across handlers, and death by a default-action signal. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/time.h>
static volatile sig_atomic_t got, alarms;
static void h(int s, siginfo_t *si, void *uc) { got = s * 100 + (si->si_signo == s); }
static void al(int s) { alarms++; }
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO; sigaction(SIGUSR1, &sa, 0);
    raise(SIGUSR1);
    printf("after raise: got=%d\n", got);
    signal(SIGALRM, al);
    alarm(1); pause();
    printf("after pause: alarms=%d\n", alarms);
    struct itimerval it = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, 0);
    volatile unsigned long spin = 0;
    while (alarms < 5) spin++;
    it.it_value.tv_usec = 0; it.it_interval.tv_usec = 0; setitimer(ITIMER_REAL, &it, 0);
    printf("timer ticks reached %d while spinning\n", alarms >= 5 ? 5 : alarms);
    sigset_t set; sigemptyset(&set); sigaddset(&set, SIGUSR1); sigprocmask(SIG_BLOCK, &set, 0);
    got = 0; raise(SIGUSR1);
    printf("blocked: got=%d\n", got);
    sigprocmask(SIG_UNBLOCK, &set, 0);
    printf("unblocked: got=%d\n", got);
    double d = 1.5; for (int i = 0; i < 3; i++) { raise(SIGUSR1); d *= 2; }
    printf("fp state survives handlers: %g\n", d);
    signal(SIGUSR2, SIG_IGN); raise(SIGUSR2); printf("ignored SIGUSR2\n");
    signal(SIGTERM, SIG_DFL); fflush(stdout); raise(SIGTERM);
    printf("not reached\n");
    return 0;
}
