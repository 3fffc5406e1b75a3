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
