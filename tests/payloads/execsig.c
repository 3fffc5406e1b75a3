/* Pending signals across execve: blocked ones raised before the exec (a
 * thread-directed SIGUSR1, a process-wide SIGUSR2, two queued real-time
 * signals with their values, an ignored SIGWINCH) are still pending in the
 * new program, which unblocks them and reports what arrives, with siginfo. */
#define _GNU_SOURCE
#include "common.h"

#include <unistd.h>

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	int rt = sig >= SIGRTMIN;
	printf("  got %s%d code %s from self %s value %d\n", rt ? "SIGRTMIN+" : "signal ", rt ? sig - SIGRTMIN : sig,
	       si->si_code == SI_USER ? "SI_USER" : si->si_code == SI_TKILL ? "SI_TKILL"
	       : si->si_code == SI_QUEUE ? "SI_QUEUE" : "other",
	       yes(si->si_pid == getpid()), si->si_code == SI_QUEUE ? si->si_value.sival_int : -1);
}

static void after(void)
{
	sigset_t set;
	CHECK(sigprocmask(SIG_BLOCK, NULL, &set) == 0);
	printf("after exec: blocked SIGUSR1 %s SIGRTMIN+1 %s\n", yes(sigismember(&set, SIGUSR1)),
	       yes(sigismember(&set, SIGRTMIN + 1)));
	CHECK(sigpending(&set) == 0);
	printf("pending: SIGUSR1 %s SIGUSR2 %s SIGRTMIN+1 %s SIGWINCH %s SIGTERM %s\n", yes(sigismember(&set, SIGUSR1)),
	       yes(sigismember(&set, SIGUSR2)), yes(sigismember(&set, SIGRTMIN + 1)), yes(sigismember(&set, SIGWINCH)),
	       yes(sigismember(&set, SIGTERM)));
	struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO};
	int sigs[] = {SIGUSR1, SIGUSR2, SIGRTMIN + 1};
	for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++)
		CHECK(sigaction(sigs[i], &sa, NULL) == 0);
	printf("unblocking\n");
	sigemptyset(&set);
	CHECK(sigprocmask(SIG_SETMASK, &set, NULL) == 0);
	printf("done\n");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 1) {
		after();
		return 0;
	}
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = {SIGUSR1, SIGUSR2, SIGRTMIN + 1, SIGWINCH, SIGTERM};
	for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaddset(&set, sigs[i]);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	/* A handler is reset by exec; the signal stays pending. */
	CHECK(signal(SIGUSR2, SIG_IGN) != SIG_ERR && signal(SIGUSR2, SIG_DFL) != SIG_ERR);
	CHECK(raise(SIGUSR1) == 0);
	CHECK(kill(getpid(), SIGUSR2) == 0);
	CHECK(sigqueue(getpid(), SIGRTMIN + 1, (union sigval){.sival_int = 42}) == 0);
	CHECK(sigqueue(getpid(), SIGRTMIN + 1, (union sigval){.sival_int = 43}) == 0);
	/* Ignored and blocked: pending, and ignored still after exec. */
	CHECK(signal(SIGWINCH, SIG_IGN) != SIG_ERR);
	CHECK(kill(getpid(), SIGWINCH) == 0);
	CHECK(sigpending(&set) == 0);
	printf("before exec: pending SIGUSR1 %s SIGRTMIN+1 %s SIGWINCH %s\n", yes(sigismember(&set, SIGUSR1)),
	       yes(sigismember(&set, SIGRTMIN + 1)), yes(sigismember(&set, SIGWINCH)));
	char *args[] = {argv[0], "after", NULL};
	execv("/proc/self/exe", args);
	printf("exec failed: %s\n", errno_name(errno));
	return 1;
}
