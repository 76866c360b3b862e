/* Real-time signals sent by another process, with values: SIGRTMIN (34 for glibc, a number
 * that the C library of the emulator's own process may keep for its threads), SIGRTMIN+1 and
 * SIGRTMAX, queued while blocked and taken one at a time by sigsuspend. A signal that never
 * arrives ends the program by SIGALRM instead of leaving it waiting. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t last_sig, last_val, last_code, from_child;
static pid_t child;
static void h(int s, siginfo_t *si, void *uc) {
    (void)uc;
    last_sig = s;
    last_val = si->si_value.sival_int;
    last_code = si->si_code;
    from_child = si->si_pid == child;
}
int main(void) {
    int sigs[3] = {SIGRTMIN, SIGRTMIN + 1, SIGRTMAX};
    alarm(20);
    sigset_t block, old;
    sigemptyset(&block);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO;
    for (int i = 0; i < 3; i++) {
        sigaction(sigs[i], &sa, 0);
        sigaddset(&block, sigs[i]);
    }
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t parent = getpid();
    fflush(stdout);
    child = fork();
    if (child == 0) {
        for (int i = 0; i < 3; i++) {
            union sigval v = {.sival_int = 100 + i};
            sigqueue(parent, sigs[i], v);
        }
        _exit(0);
    }
    /* A signal the process blocks does not interrupt waitpid natively; under an emulator it
     * may (a separate matter from this program's). */
    while (waitpid(child, 0, 0) < 0 && errno == EINTR)
        ;
    /* All three are pending now; each sigsuspend lets exactly one through. */
    for (int i = 2; i >= 0; i--) {
        sigset_t wait = block;
        sigdelset(&wait, sigs[i]);
        sigsuspend(&wait);
        printf("SIGRTMIN+%d: value %d, SI_QUEUE %d, from the child %d\n", last_sig - SIGRTMIN, last_val,
               last_code == SI_QUEUE, from_child);
    }
    return 0;
}
