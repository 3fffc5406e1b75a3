/* signalfd with blocked signals: kill, raise, tgkill, sigqueue with a
 * value, a POSIX timer and a child's SIGCHLD read as signalfd_siginfo;
 * several queued real-time signals in one read and across a readv;
 * non-blocking EAGAIN; poll and epoll readiness before and after; mask
 * update; dup; a handled signal interrupting a blocking read; bad
 * arguments. Prints only what is the same natively and under km. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

typedef struct signalfd_siginfo ssi_t;

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK(poll(&p, 1, 0) >= 0);
	return (p.revents & POLLIN) != 0;
}

static int epoll_ready(int ep)
{
	struct epoll_event ev;
	int n = epoll_wait(ep, &ev, 1, 0);
	CHECK(n >= 0);
	return n;
}

static const char *code_name(int code)
{
	switch (code) {
	case SI_USER: return "SI_USER";
	case SI_TKILL: return "SI_TKILL";
	case SI_QUEUE: return "SI_QUEUE";
	case SI_TIMER: return "SI_TIMER";
	case CLD_EXITED: return "CLD_EXITED";
	default: return "other";
	}
}

/* One record: its signal, code, and whether the sender is this process. */
static void show(const char *what, const ssi_t *s)
{
	printf("%s: %s %s errno %d pid-self %s uid-self %s int %d ptr %llu\n", what, signal_name(s->ssi_signo),
	       code_name(s->ssi_code), s->ssi_errno, yes(s->ssi_pid == (unsigned)getpid()),
	       yes(s->ssi_uid == getuid()), s->ssi_int, (unsigned long long)s->ssi_ptr);
}

static void read_one(const char *what, int fd)
{
	ssi_t s;
	ssize_t n = read(fd, &s, sizeof s);
	if (n < 0) {
		printf("%s: %s\n", what, errno_name(errno));
		return;
	}
	CHECK(n == sizeof s);
	show(what, &s);
}

static void queue(int sig, int value)
{
	union sigval v = { .sival_int = value };
	CHECK(sigqueue(getpid(), sig, v) == 0);
}

static void basics(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	int fd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
	CHECK(fd >= 0);
	printf("nonblock %s cloexec %s\n", yes(fcntl(fd, F_GETFL) & O_NONBLOCK), yes(fcntl(fd, F_GETFD) & FD_CLOEXEC));
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	CHECK(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);

	read_one("empty", fd);
	printf("empty: poll %s epoll %d\n", yes(readable(fd)), epoll_ready(ep));
	raise(SIGUSR1);
	printf("raised: poll %s epoll %d\n", yes(readable(fd)), epoll_ready(ep));
	read_one("raise", fd);
	printf("drained: poll %s epoll %d\n", yes(readable(fd)), epoll_ready(ep));
	kill(getpid(), SIGUSR2);
	read_one("kill", fd);
	syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1);
	read_one("tgkill", fd);
	/* Standard signals coalesce. */
	kill(getpid(), SIGUSR1);
	kill(getpid(), SIGUSR1);
	ssi_t two[2];
	printf("coalesced: %zd bytes\n", read(fd, two, sizeof two));

	/* A new mask: SIGRTMIN and SIGUSR1, no longer SIGUSR2. */
	sigemptyset(&m);
	sigaddset(&m, SIGRTMIN);
	sigaddset(&m, SIGUSR1);
	printf("update returns the fd: %s\n", yes(signalfd(fd, &m, 0) == fd));
	kill(getpid(), SIGUSR2);
	printf("other signal pending: poll %s\n", yes(readable(fd)));
	read_one("not in mask", fd);
	siginfo_t si;
	sigset_t u2;
	sigemptyset(&u2);
	sigaddset(&u2, SIGUSR2);
	struct timespec zero = { 0, 0 };
	printf("sigtimedwait takes it: %s\n", signal_name(sigtimedwait(&u2, &si, &zero)));

	for (int v = 1; v <= 3; v++)
		queue(SIGRTMIN, v);
	ssi_t four[4];
	ssize_t n = read(fd, four, sizeof four);
	printf("queued: %zd records\n", n / (ssize_t)sizeof(ssi_t));
	for (int i = 0; i < n / (ssize_t)sizeof(ssi_t); i++)
		show("  queued", &four[i]);
	printf("after: poll %s epoll %d\n", yes(readable(fd)), epoll_ready(ep));

	/* Records split across a readv's buffers as the kernel splits them. */
	queue(SIGRTMIN, 10);
	queue(SIGRTMIN, 11);
	char a[100], b[200];
	struct iovec iov[2] = { { a, sizeof a }, { b, sizeof b } };
	n = readv(fd, iov, 2);
	printf("readv: %zd bytes\n", n);
	ssi_t r[2];
	memcpy(r, a, sizeof a);
	memcpy((char *)r + sizeof a, b, 2 * sizeof(ssi_t) - sizeof a);
	show("  readv", &r[0]);
	show("  readv", &r[1]);

	/* A dup reads the same queue, and keeps it after the original closes. */
	int d = dup(fd);
	CHECK(d >= 0);
	raise(SIGUSR1);
	printf("dup readable: %s\n", yes(readable(d)));
	read_one("dup", d);
	read_one("original after dup read", fd);
	CHECK(close(fd) == 0);
	queue(SIGRTMIN, 5);
	printf("after close: dup poll %s epoll-of-closed %d\n", yes(readable(d)), epoll_ready(ep));
	read_one("dup after close", d);
	close(d);
	close(ep);
}

static void errors(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	SHOW("sizemask 4", syscall(SYS_signalfd4, -1, &m, 4, 0));
	SHOW("bad flags", syscall(SYS_signalfd4, -1, &m, 8, 1));
	SHOW("wild mask", syscall(SYS_signalfd4, -1, (void *)16, 8, 0));
	SHOW("wild mask, signalfd", syscall(SYS_signalfd, -1, (void *)16, 8));
	int p[2];
	CHECK(pipe(p) == 0);
	SHOW("pipe as fd", signalfd(p[0], &m, 0));
	close(p[0]);
	close(p[1]);
	SHOW("closed fd", signalfd(900, &m, 0));
	SHOW("fd -2", signalfd(-2, &m, 0));
	sigset_t all;
	sigfillset(&all);
	int fd = signalfd(-1, &all, SFD_NONBLOCK);
	printf("full mask accepted: %s\n", yes(fd >= 0));
	close(fd);
	fd = signalfd(-1, &m, SFD_NONBLOCK);
	CHECK(fd >= 0);
	char small[127];
	SHOW("read 127 bytes", read(fd, small, sizeof small));
	raise(SIGUSR1);
	SHOW("wild buffer", read(fd, (void *)16, 128));
	printf("signal lost with it: %s\n", yes(!readable(fd)));
	SHOW("write", write(fd, small, 8));
	/* close_range forgets it: a pipe at the same number is a pipe. */
	int other = signalfd(-1, &m, 0);
	CHECK(other >= 0 && syscall(SYS_close_range, other, other, 0) == 0);
	int q[2];
	CHECK(pipe(q) == 0 && write(q[1], "x", 1) == 1);
	printf("number reused by a pipe: %s, reads %zd\n", yes(q[0] == other), read(q[0], small, 1));
	close(q[0]);
	close(q[1]);
	struct iovec wild[2] = { { small, 64 }, { (void *)-4096L, 128 } };
	SHOW("readv past user space", readv(fd, wild, 2));
	struct iovec neg[1] = { { small, (size_t)-1 } };
	SHOW("readv negative length", readv(fd, neg, 1));
	raise(SIGUSR1);
	struct iovec unmapped[2] = { { small, 64 }, { (void *)4096, 128 } };
	SHOW("readv unmapped", readv(fd, unmapped, 2));
	printf("signal lost with it: %s\n", yes(!readable(fd)));
	close(fd);
}

/* A real-time signal from a POSIX timer, waited for by a blocking read. */
static void timer(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGRTMIN + 1);
	int fd = signalfd(-1, &m, 0);
	CHECK(fd >= 0);
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1 };
	sev.sigev_value.sival_int = 77;
	timer_t t;
	CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0);
	struct itimerspec its = { .it_value = { 0, 1000000 } };
	CHECK(timer_settime(t, 0, &its, NULL) == 0);
	read_one("timer", fd);
	timer_delete(t);
	close(fd);
}

/* SIGCHLD of a child that exits 7, read by a blocking read. */
static void child(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGCHLD);
	int fd = signalfd(-1, &m, 0);
	CHECK(fd >= 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(7);
	ssi_t s;
	CHECK(read(fd, &s, sizeof s) == sizeof s);
	printf("child: %s %s pid-child %s status %d\n", signal_name(s.ssi_signo), code_name(s.ssi_code),
	       yes(s.ssi_pid == (unsigned)pid), s.ssi_status);
	CHECK(waitpid(pid, NULL, 0) == pid);
	close(fd);
}

/* The child keeps its signalfd, which reads the child's own signals, and
 * its readiness is its own. */
static void across_fork(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	int fd = signalfd(-1, &m, SFD_NONBLOCK);
	CHECK(fd >= 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int empty = !readable(fd);
		raise(SIGUSR1);
		int ready = readable(fd);
		ssi_t s;
		int got = read(fd, &s, sizeof s) == sizeof s && s.ssi_signo == SIGUSR1;
		_exit(empty && ready && got && !readable(fd) ? 0 : 1);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	printf("fork: child read its own %s, parent sees nothing %s\n",
	       yes(WIFEXITED(status) && WEXITSTATUS(status) == 0), yes(!readable(fd)));
	close(fd);
}

static volatile sig_atomic_t handled;

static void on_usr2(int sig)
{
	(void)sig;
	handled++;
}

/* A handled signal (no SA_RESTART) cuts a blocking read short. The child
 * sends one every few milliseconds, so one lands while the read blocks. */
static void interrupted(void)
{
	struct sigaction sa = { .sa_handler = on_usr2 };
	CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	CHECK(sigprocmask(SIG_UNBLOCK, &m, NULL) == 0);
	sigemptyset(&m);
	sigaddset(&m, SIGRTMIN + 3);
	int fd = signalfd(-1, &m, 0);
	CHECK(fd >= 0);
	pid_t parent = getpid(), pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		for (;;) {
			kill(parent, SIGUSR2);
			usleep(5000);
		}
	}
	ssi_t s;
	errno = 0;
	ssize_t n = read(fd, &s, sizeof s);
	printf("interrupted: %zd %s handled %s\n", n, errno_name(errno), yes(handled > 0));
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, NULL, 0) == pid);
	close(fd);
}

/* A signalfd without FD_CLOEXEC stays one across exec, with its mask (as
 * fd 20); a close-on-exec one (fd 21) is gone. Checked by the new image. */
static void exec_keeps(const char *self)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	int fd = signalfd(-1, &m, SFD_NONBLOCK), gone = signalfd(-1, &m, SFD_CLOEXEC);
	CHECK(fd >= 0 && gone >= 0);
	CHECK(dup2(fd, 20) == 20 && dup3(gone, 21, O_CLOEXEC) == 21);
	execl(self, "signalfd", "exec-child", (char *)0);
	printf("exec failed: %s\n", errno_name(errno));
}

static void exec_child(void)
{
	printf("after exec: cloexec one open %s, kept one readable %s\n", yes(fcntl(21, F_GETFD) >= 0),
	       yes(readable(20)));
	read_one("after exec, empty", 20);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	CHECK(sigprocmask(SIG_BLOCK, &m, NULL) == 0);
	kill(getpid(), SIGUSR2);
	printf("after exec, other signal: readable %s\n", yes(readable(20)));
	raise(SIGUSR1);
	printf("after exec, its signal: readable %s\n", yes(readable(20)));
	read_one("after exec", 20);
	read_one("after exec, again", 20);
	printf("exec done\n");
}

int main(int argc, char **argv)
{
	if (MODE("exec-child")) {
		exec_child();
		return 0;
	}
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	sigaddset(&m, SIGCHLD);
	for (int i = 0; i < 4; i++)
		sigaddset(&m, SIGRTMIN + i);
	CHECK(sigprocmask(SIG_BLOCK, &m, NULL) == 0);
	basics();
	errors();
	timer();
	child();
	across_fork();
	interrupted();
	printf("done\n");
	if (MODE("exec")) {
		fflush(stdout);
		exec_keeps(argv[0]);
	}
	return 0;
}
