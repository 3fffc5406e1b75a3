/* Controlling terminals and the tty layer's job-control stops, on a pty the
 * payload opens itself: TIOCSCTTY and TIOCNOTTY (and their errors), a
 * background group's terminal read and tcsetpgrp stopped by SIGTTIN and
 * SIGTTOU as its parent's waitpid(WUNTRACED) sees, or EIO and success when
 * the signal is ignored. */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void report(const char *what, long r)
{
	printf("%s: %ld %s\n", what, r, r < 0 ? errno_name(errno) : "ok");
}

/* Runs `child` in a new background process group of the session and
 * prints how it stopped or ended. */
static void background(const char *what, int tty, int ignore, int (*child)(int tty))
{
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		CHECK(setpgid(0, 0) == 0);
		if (ignore)
			signal(ignore, SIG_IGN);
		_exit(child(tty));
	}
	int st;
	CHECK(waitpid(c, &st, WUNTRACED) == c);
	if (WIFSTOPPED(st)) {
		printf("%s: stopped by %s\n", what,
		       WSTOPSIG(st) == SIGTTIN ? "SIGTTIN" : WSTOPSIG(st) == SIGTTOU ? "SIGTTOU" : "another signal");
		CHECK(kill(c, SIGKILL) == 0);
		CHECK(waitpid(c, &st, 0) == c);
	} else {
		printf("%s: exited %d\n", what, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
}

static int read_tty(int tty)
{
	char b;
	report("  read", read(tty, &b, 1));
	return 0;
}

static int take_tty(int tty)
{
	report("  tcsetpgrp", tcsetpgrp(tty, getpgrp()));
	return 0;
}

static volatile int caught;

/* Counts; the third time it ignores the signal from then on (a restarted
 * call would otherwise stop the job forever). */
static void on_tty_signal(int sig)
{
	if (++caught == 3)
		signal(sig, SIG_IGN);
}

/* A background job with its own handler for the terminal's stop signal
 * `sig`: the call fails with EINTR, or restarts with SA_RESTART (the
 * handler runs each time) until the signal is ignored. */
static int with_handler(int tty, int sig, int flags, int (*call)(int tty))
{
	struct sigaction sa = {.sa_handler = on_tty_signal, .sa_flags = flags};
	CHECK(sigaction(sig, &sa, NULL) == 0);
	call(tty);
	printf("  handler ran %d times\n", caught);
	return 0;
}

static int read_ttin_handler(int tty)
{
	return with_handler(tty, SIGTTIN, 0, read_tty);
}

static int read_ttin_restart(int tty)
{
	return with_handler(tty, SIGTTIN, SA_RESTART, read_tty);
}

static int take_ttou_handler(int tty)
{
	return with_handler(tty, SIGTTOU, 0, take_tty);
}

static int take_ttou_restart(int tty)
{
	return with_handler(tty, SIGTTOU, SA_RESTART, take_tty);
}

static int read_ttin_blocked(int tty)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTTIN);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	return read_tty(tty);
}

/* A background group with no parent in the session (its parent exited):
 * orphaned, so reading the terminal fails with EIO instead of stopping. */
static void orphaned_read(int tty)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		pid_t parent = getpid();
		pid_t g = fork();
		CHECK(g >= 0);
		if (g == 0) {
			CHECK(setpgid(0, 0) == 0);
			close(p[0]);
			while (getppid() == parent)
				usleep(1000);
			char b;
			long r = read(tty, &b, 1);
			int e = errno;
			char line[64];
			int n = snprintf(line, sizeof line, "%ld %s", r, r < 0 ? errno_name(e) : "ok");
			CHECK(write(p[1], line, n) == n);
			_exit(0);
		}
		_exit(0);
	}
	close(p[1]);
	int st;
	CHECK(waitpid(c, &st, 0) == c);
	char line[64] = {0};
	CHECK(read(p[0], line, sizeof line - 1) > 0);
	printf("read, orphaned group: %s\n", line);
	close(p[0]);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* sendfile waiting on an empty socket ends with EINTR when a handler without
 * SA_RESTART runs (cat's copy loop relies on it for Ctrl-C). */
static void sendfile_interrupted(void)
{
	int in[2], out[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, in) == 0 && pipe(out) == 0);
	struct sigaction sa = {.sa_handler = on_alarm};
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
	alarm(1);
	report("sendfile from an empty socket, interrupted", sendfile(out[1], in[0], NULL, 4096));
	signal(SIGALRM, SIG_DFL);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	sendfile_interrupted();
	int p[2];
	CHECK(pipe(p) == 0);
	report("TIOCSCTTY on a pipe", ioctl(p[0], TIOCSCTTY, 0));
	report("TIOCSCTTY on a closed fd", ioctl(99, TIOCSCTTY, 0));
	report("TIOCNOTTY on a pipe", ioctl(p[0], TIOCNOTTY));

	int m = posix_openpt(O_RDWR | O_NOCTTY);
	CHECK(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0);
	const char *name = ptsname(m);
	CHECK(name);
	int s = open(name, O_RDWR | O_NOCTTY);
	CHECK(s >= 0);
	report("TIOCSCTTY, not a session leader", ioctl(s, TIOCSCTTY, 0));

	pid_t leader = fork();
	CHECK(leader >= 0);
	if (leader == 0) {
		CHECK(setsid() == getpid());
		report("TIOCSCTTY", ioctl(s, TIOCSCTTY, 0));
		printf("foreground group is the leader's: %s\n", yes(tcgetpgrp(s) == getpid()));
		background("read, SIGTTIN ignored", s, SIGTTIN, read_tty);
		background("read", s, 0, read_tty);
		background("tcsetpgrp", s, 0, take_tty);
		background("tcsetpgrp, SIGTTOU ignored", s, SIGTTOU, take_tty);
		background("read, SIGTTIN handler", s, 0, read_ttin_handler);
		background("read, SIGTTIN handler with SA_RESTART", s, 0, read_ttin_restart);
		background("read, SIGTTIN blocked", s, 0, read_ttin_blocked);
		background("tcsetpgrp, SIGTTOU handler", s, 0, take_ttou_handler);
		background("tcsetpgrp, SIGTTOU handler with SA_RESTART", s, 0, take_ttou_restart);
		orphaned_read(s);
		printf("foreground group is the leader's: %s\n", yes(tcgetpgrp(s) == getpid()));
		report("TIOCNOTTY", ioctl(s, TIOCNOTTY));
		report("tcgetpgrp after TIOCNOTTY", tcgetpgrp(s));
		_exit(0);
	}
	int st;
	CHECK(waitpid(leader, &st, 0) == leader);
	printf("leader: exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return 0;
}
