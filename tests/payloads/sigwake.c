/* Stress for lost wake-ups: a child echoes what it reads from a pipe, as
 * cat does, and its parent sends it a signal right after an echo, again
 * and again, at varied delays: the signal lands as the child returns from
 * its write, as it turns back to read, or while it waits in read. Every
 * signal must reach the child: a handler that reports itself on the echo
 * pipe (read then fails with EINTR or is not reached yet: both are fine),
 * or the default action, which ends it. A lost signal leaves the child
 * waiting in read: the parent reports it after a generous bound. */
#define _GNU_SOURCE
#include "common.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

static int echo_fd;

static void report(int sig)
{
	(void)sig;
	char s = 's';
	(void)!write(echo_fd, &s, 1);
}

static void spin(long n)
{
	for (volatile long i = 0; i < n; i++)
		;
}

/* The child: echo each byte read, until killed. */
static void echo(int in, int out)
{
	for (;;) {
		char b;
		ssize_t n = read(in, &b, 1);
		if (n == 1)
			CHECK(write(out, &b, 1) == 1);
		else if (n < 0 && errno != EINTR)
			_exit(3);
		else if (n == 0)
			_exit(0);
	}
}

/* Reads one byte from `fd` within a generous bound; 0 if none came. */
static char next(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;
	while ((r = poll(&p, 1, 20000)) < 0 && errno == EINTR)
		;
	char b = 0;
	if (r == 1 && read(fd, &b, 1) != 1)
		b = 0; /* the child is gone */
	return b;
}

static pid_t start(int *data, int *echoed, int handler)
{
	CHECK(pipe(data) == 0 && pipe(echoed) == 0);
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		echo_fd = echoed[1];
		if (handler) {
			struct sigaction sa = {.sa_handler = report};
			CHECK(sigaction(SIGINT, &sa, NULL) == 0);
		}
		close(data[1]);
		close(echoed[0]);
		CHECK(write(echoed[1], "r", 1) == 1);
		echo(data[0], echoed[1]);
	}
	close(data[0]);
	close(echoed[1]);
	CHECK(next(echoed[0]) == 'r');
	return c;
}

/* A byte to echo, then the signal `delay` later: it lands while the child
 * reads, writes the echo, or turns back to read. */
static void round_trip(pid_t c, int *data, long delay)
{
	CHECK(write(data[1], "x", 1) == 1);
	spin(delay);
	CHECK(kill(c, SIGINT) == 0);
}

/* True once `c` has ended (status in `st`), within a generous bound. */
static int ended(pid_t c, int *st)
{
	for (int i = 0; i < 20000; i++) {
		pid_t r = waitpid(c, st, WNOHANG);
		CHECK(r >= 0);
		if (r == c)
			return 1;
		poll(NULL, 0, 1);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 1000;
	setvbuf(stdout, NULL, _IONBF, 0);
	int data[2], echoed[2];

	/* One child takes every signal with its handler. */
	pid_t c = start(data, echoed, 1);
	int handled = 0, lost = 0;
	for (int i = 0; i < rounds && !lost; i++) {
		round_trip(c, data, (i % 32) * 1000L);
		/* The echo and the handler's report, in either order. */
		char b = next(echoed[0]), b2 = next(echoed[0]);
		if ((b == 's' && b2 == 'x') || (b == 'x' && b2 == 's'))
			handled++;
		else
			lost = printf("handler, round %d: the signal was lost\n", i);
	}
	close(data[1]);
	int st;
	if (lost)
		kill(c, SIGKILL);
	CHECK(waitpid(c, &st, 0) == c);
	close(echoed[0]);
	printf("handled: %d of %d\n", handled, rounds);

	/* The default action: a child per signal. */
	int killed = 0;
	for (int i = 0; i < rounds / 8 && !lost; i++) {
		c = start(data, echoed, 0);
		round_trip(c, data, (i % 32) * 1000L);
		if (!ended(c, &st)) {
			kill(c, SIGKILL);
			CHECK(waitpid(c, &st, 0) == c);
		}
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGINT)
			killed++;
		else
			lost = printf("default, round %d: status %#x\n", i, st);
		close(data[1]);
		close(echoed[0]);
	}
	printf("killed by SIGINT: %d of %d\n", killed, rounds / 8);
	return lost != 0;
}
