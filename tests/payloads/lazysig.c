/* Signals for a process that never waits in the kernel: km starts such a
 * process without its signal-forwarding thread (a host signal ends the
 * vCPU's run instead), so each child here spins in user code, with no
 * system call, until what it waits for has come: a signal from its
 * parent (to a handler, and by the default action, and after writes to
 * /dev/null and a local file), SIGSYS from outside,
 * SIGCHLD of its own child, SIGALRM of its interval timer, and the
 * passing of time read through the vDSO clock alone. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static volatile sig_atomic_t got;

static void on_signal(int sig)
{
	got = sig;
}

static void handle(int sig)
{
	struct sigaction sa = {.sa_handler = on_signal};
	CHECK(sigaction(sig, &sa, NULL) == 0);
}

/* Spins without a system call until a handler ran; exits with its signal. */
static void spin_until_handled(void)
{
	while (!got)
		;
	_exit(got);
}

static const char *status(int st)
{
	static char text[48];
	if (WIFEXITED(st))
		snprintf(text, sizeof text, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(text, sizeof text, "killed by %s", strsignal(WTERMSIG(st)));
	else
		snprintf(text, sizeof text, "status %#x", st);
	return text;
}

/* Set by a child in memory it shares with its parent: a pipe written
 * would be a call that may wait in the kernel. */
static volatile int *ready;

/* Forks a child that sets itself up with `setup`, says it is ready and
 * spins. The parent then sends `sig` (0 for none) and reaps the child. */
static void run(const char *what, void (*setup)(void), int sig)
{
	*ready = 0;
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		setup();
		*ready = 1;
		spin_until_handled();
	}
	while (!*ready)
		usleep(1000);
	if (sig)
		CHECK(kill(pid, sig) == 0);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	printf("%s: %s\n", what, status(st));
}

static void usr1_handler(void)
{
	handle(SIGUSR1);
}

static void nothing(void)
{
}

/* Writes that cannot wait: km needs no forwarder for them either. */
static void writes_then_usr2(void)
{
	handle(SIGUSR2);
	FILE *null = fopen("/dev/null", "w"), *file = fopen("written", "w");
	CHECK(null && file);
	CHECK(fputs("x\n", null) >= 0 && fflush(null) == 0);
	CHECK(fputs("x\n", file) >= 0 && fflush(file) == 0);
}

static void sys_handler(void)
{
	handle(SIGSYS);
}

static void child_of_its_own(void)
{
	handle(SIGCHLD);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(0);
}

static void interval_timer(void)
{
	handle(SIGALRM);
	struct itimerval it = {.it_value = {.tv_usec = 50000}};
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

/* Reads the monotonic clock (the vDSO's: no system call) until 300 ms
 * have passed, past the 200 ms after which km re-bases the vDSO clock. */
static void clock_child(void)
{
	struct timespec a, b;
	CHECK(clock_gettime(CLOCK_MONOTONIC, &a) == 0);
	long long start = a.tv_sec * 1000000000LL + a.tv_nsec, last = start, now;
	int backwards = 0;
	do {
		CHECK(clock_gettime(CLOCK_MONOTONIC, &b) == 0);
		now = b.tv_sec * 1000000000LL + b.tv_nsec;
		backwards |= now < last;
		last = now;
	} while (now - start < 300000000LL);
	_exit(backwards ? 1 : 0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	ready = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(ready != MAP_FAILED);
	run("SIGUSR1 to a handler", usr1_handler, SIGUSR1);
	run("SIGTERM by default", nothing, SIGTERM);
	run("SIGUSR2 after writes to /dev/null and a file", writes_then_usr2, SIGUSR2);
	run("SIGSYS to a handler", sys_handler, SIGSYS);
	run("SIGCHLD of its own child", child_of_its_own, 0);
	run("SIGALRM of its timer", interval_timer, 0);
	/* An open that waits (a FIFO without a writer) gets the forwarder
	 * first, so SIGTERM ends it. */
	CHECK(mkfifo("fifo", 0600) == 0);
	*ready = 0;
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		*ready = 1;
		open("fifo", O_RDONLY);
		_exit(1);
	}
	while (!*ready)
		usleep(1000);
	usleep(20000);
	CHECK(kill(pid, SIGTERM) == 0);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	printf("SIGTERM in an open of a FIFO: %s\n", status(st));

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		clock_child();
	CHECK(waitpid(pid, &st, 0) == pid);
	printf("300 ms of vDSO clock, never backwards: %s\n", status(st));
	return 0;
}
