/* hostsig MODE SIGNAL: a signal sent from outside (the harness signals
 * the process it started: the payload natively, km under km) while the
 * payload spins on the CPU. The payload prints "ready" once it is set up;
 * the harness sends SIGNAL when it sees that line.
 *   handler SIGNAL - a handler notes the signal and its sender; the spin
 *                    loop sees the note and the payload exits 0
 *   default SIGNAL - no handler: the payload dies of SIGNAL (128+n) */
#define _GNU_SOURCE
#include "common.h"

#include <unistd.h>

static volatile sig_atomic_t got;
static siginfo_t info;

static void note(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	info = *si;
	got = sig;
}

static void ready(void)
{
	printf("ready\n");
	fflush(stdout);
}

/* Pure computation, no system calls: the signal must interrupt the guest. */
static unsigned long spin_until_signal(void)
{
	unsigned long x = 1;
	while (!got)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	return x;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (!MODE("handler") && !MODE("default"))) {
		fprintf(stderr, "usage: hostsig handler|default SIGNAL\n");
		return 2;
	}
	int sig = signal_number(argv[2]);
	/* Explicitly SIG_DFL: a shell may have started us with SIGINT ignored. */
	struct sigaction sa = {0};
	sa.sa_handler = SIG_DFL;
	if (MODE("handler")) {
		sa.sa_sigaction = note;
		sa.sa_flags = SA_SIGINFO;
	}
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(sig, &sa, NULL) == 0);
	ready();
	unsigned long x = spin_until_signal();
	printf("handled %s, from the parent: %s, SI_USER: %s, spin value kept: %s\n",
	       signal_name(got), info.si_pid == getppid() ? "yes" : "no",
	       info.si_code == SI_USER ? "yes" : "no", x != 0 ? "yes" : "no");
	return 0;
}
