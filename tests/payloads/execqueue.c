/* Thousands of queued real-time signals pending at execve all reach the
 * new program, with their values in order: the state km hands the new
 * image is not bounded by the size of one argument (128 KiB).
 *   execqueue        queue N signals (blocked), then exec "execqueue after"
 *   execqueue after  take them with sigtimedwait and check them */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 3000

int main(int argc, char **argv) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    if (argc < 2) {
        sigprocmask(SIG_BLOCK, &set, 0);
        for (int i = 0; i < N; i++) {
            union sigval v = {.sival_int = i};
            if (sigqueue(getpid(), SIGRTMIN, v) != 0) {
                printf("sigqueue %d: %s\n", i, strerror(errno));
                return 1;
            }
        }
        printf("queued %d\n", N);
        fflush(stdout);
        execl("/proc/self/exe", argv[0], "after", (char *)0);
        printf("execl: %s\n", strerror(errno));
        return 1;
    }
    sigset_t now;
    sigprocmask(SIG_BLOCK, 0, &now);
    printf("still blocked: %s\n", sigismember(&now, SIGRTMIN) ? "yes" : "no");
    struct timespec zero = {0, 0};
    siginfo_t si;
    int got = 0, in_order = 1;
    while (sigtimedwait(&set, &si, &zero) == SIGRTMIN) {
        if (si.si_code != SI_QUEUE || si.si_value.sival_int != got)
            in_order = 0;
        got++;
    }
    printf("received %d, in order with their values: %s\n", got, in_order ? "yes" : "no");
    return got == N && in_order ? 0 : 1;
}
