/* Resource limits as a hostile payload uses them: set through another
 * thread's tid, pushed to their edges, given bad pointers. Under km the
 * limits are the payload's own, so every mode prints what it prints
 * natively, and km's own fds never show up in the payload's range.
 *
 *   tid-nofile   prlimit(RLIMIT_NOFILE) on another thread's tid, new thread, fd scan
 *   tid-as       the same with RLIMIT_AS
 *   nofile N     open until EMFILE at soft limit N; dup2/dup3/F_DUPFD/pipe/poll at the edge
 *   as           RLIMIT_AS against mmap, mremap, brk and MAP_FIXED
 *   pointers     NULL and bad pointers to getrlimit/setrlimit/prlimit64
 *   tids         reads tids from stdin, prlimit(NOFILE) on each, then new threads and the fd scan
 *   wait         starts a thread, prints "ready", waits for stdin to close
 *   pause        prints "ready" and waits for a signal to end it
 *   sigpending   RLIMIT_SIGPENDING 8: sigqueue and tgkill of a blocked RT
 *                signal until EAGAIN, then kill, a standard signal and a
 *                raised limit still queue; everything is received (as a
 *                fresh uid of its own, since Linux counts per user) */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MIB (1024L * 1024)

static long raw_prlimit(long pid, long res, const void *new, void *old)
{
	return syscall(SYS_prlimit64, pid, res, new, old);
}

/* The hard RLIMIT_NOFILE km starts the payload with ends at km's fd floor,
 * so only limits the payload set itself are printed in full. */
static void show_limit(const char *label, int res)
{
	struct rlimit r;
	CHECK(syscall(SYS_getrlimit, res, &r) == 0);
	printf("%s: %llu %llu\n", label, (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max);
}

static void show_soft(const char *label, int res)
{
	struct rlimit r;
	CHECK(syscall(SYS_getrlimit, res, &r) == 0);
	printf("%s: %llu\n", label, (unsigned long long)r.rlim_cur);
}

#define SCAN_END (65536 + 600)

/* Fds a test runner leaks to its children are not the payload's doing. */
static void close_inherited(void)
{
	for (int fd = 3; fd < SCAN_END; fd++)
		close(fd);
}

/* Every fd the payload has, scanned with fcntl(F_GETFD) across the whole
 * range where km could keep its own. */
static void scan_fds(void)
{
	printf("open fds:");
	for (int fd = 0; fd < SCAN_END; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			printf(" %d", fd);
	printf("\n");
}

static void *nothing(void *arg)
{
	return arg;
}

/* Starts and joins a thread; a new vCPU under km. */
static void new_thread(const char *label)
{
	pthread_t t;
	int e = pthread_create(&t, NULL, nothing, NULL);
	printf("%s: %s\n", label, errno_name(e));
	if (e == 0)
		CHECK(pthread_join(t, NULL) == 0);
}

static int wake[2];
static volatile long other_tid;

static void *parked(void *arg)
{
	char c;
	other_tid = syscall(SYS_gettid);
	CHECK(read(wake[0], &c, 1) == 1);
	return arg;
}

/* Sets `res` to {lim, lim} through another thread's tid, then makes new
 * threads and looks for fds that are not the payload's. */
static void through_tid(int res, unsigned long long lim)
{
	pthread_t t;
	CHECK(pipe(wake) == 0);
	CHECK(pthread_create(&t, NULL, parked, NULL) == 0);
	while (!other_tid)
		sched_yield();
	struct rlimit r = { lim, lim };
	SHOW("prlimit on the other tid", raw_prlimit(other_tid, res, &r, NULL));
	show_limit("limit now", res);
	new_thread("thread after");
	new_thread("another thread");
	CHECK(write(wake[1], "x", 1) == 1);
	CHECK(pthread_join(t, NULL) == 0);
	new_thread("thread after join");
	scan_fds();
}

static void nofile(int n)
{
	struct rlimit r;
	CHECK(getrlimit(RLIMIT_NOFILE, &r) == 0);
	r.rlim_cur = n;
	CHECK(setrlimit(RLIMIT_NOFILE, &r) == 0);
	int count = 3, last = -1;
	for (;;) {
		int fd = open("/dev/null", O_RDWR);
		if (fd < 0) {
			printf("open stops with %s after %d fds\n", errno_name(errno), count);
			break;
		}
		last = fd;
		count++;
	}
	printf("last fd is limit - 1: %s\n", yes(last == n - 1));
	SHOW("dup", dup(0));
	SHOW("F_DUPFD from 0", fcntl(0, F_DUPFD, 0));
	SHOW("F_DUPFD_CLOEXEC from limit", fcntl(0, F_DUPFD_CLOEXEC, n));
	SHOW("F_DUPFD from -1", fcntl(0, F_DUPFD, -1));
	SHOW("dup2 onto limit", dup2(0, n));
	SHOW("dup2 onto limit - 1", dup2(0, n - 1));
	SHOW("dup2 of limit - 1 onto itself", dup2(n - 1, n - 1));
	SHOW("dup3 onto limit", dup3(0, n, O_CLOEXEC));
	SHOW("dup3 with bad flags onto limit", dup3(0, n, 1));
	SHOW("dup3 onto itself", dup3(0, 0, 0));
	SHOW("epoll_create1", epoll_create1(0));
	SHOW("eventfd", eventfd(0, 0));
	int p[2];
	SHOW("pipe", pipe(p));
	CHECK(close(n - 1) == 0);
	SHOW("pipe with one free", pipe(p));
	SHOW("dup with one free", dup(0));
	struct pollfd pf[1] = { { .fd = 0, .events = 0 } };
	SHOW("poll of limit entries", poll(pf, 0, 0) + 0 * (long)pf);
	SHOW("poll of limit + 1 entries", syscall(SYS_poll, pf, (long)n + 1, 0));
	/* Lowering the limit below open fds is allowed; they stay usable. */
	r.rlim_cur = 5;
	SHOW("lower the limit to 5", setrlimit(RLIMIT_NOFILE, &r));
	SHOW("write to fd limit - 2", write(n - 2, "x", 1));
	SHOW("open at limit 5", open("/dev/null", O_RDONLY));
	r.rlim_cur = r.rlim_max + 1;
	SHOW("soft above hard", setrlimit(RLIMIT_NOFILE, &r));
}

static void address_space(void)
{
	struct rlimit r = { 1024 * MIB, RLIM_INFINITY };
	CHECK(getrlimit(RLIMIT_AS, &r) == 0);
	r.rlim_cur = 1024 * MIB;
	SHOW("set RLIMIT_AS to 1 GiB", setrlimit(RLIMIT_AS, &r));
	show_limit("RLIMIT_AS", RLIMIT_AS);
	char *a = mmap(NULL, 512 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	printf("mmap 512 MiB: %s\n", a == MAP_FAILED ? errno_name(errno) : "ok");
	CHECK(a != MAP_FAILED);
	a[0] = 1;
	void *b = mmap(NULL, 600 * MIB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap 600 MiB more: %s\n", b == MAP_FAILED ? errno_name(errno) : "ok");
	void *c = mmap(a, 512 * MIB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	printf("MAP_FIXED over the 512 MiB: %s\n", c == MAP_FAILED ? errno_name(errno) : "ok");
	void *d = mremap(a, 512 * MIB, 1100 * MIB, MREMAP_MAYMOVE);
	printf("mremap to 1100 MiB: %s\n", d == MAP_FAILED ? errno_name(errno) : "ok");
	void *e = mremap(a, 512 * MIB, 256 * MIB, 0);
	printf("mremap down to 256 MiB: %s\n", e == MAP_FAILED ? errno_name(errno) : "ok");
	void *f = mmap(NULL, 600 * MIB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap 600 MiB now: %s\n", f == MAP_FAILED ? errno_name(errno) : "ok");
	/* brk reports failure by returning the old break. */
	long top = syscall(SYS_brk, 0);
	printf("brk up 256 MiB: %s\n", syscall(SYS_brk, top + 256 * MIB) == top ? "refused" : "ok");
	CHECK(munmap(f, 600 * MIB) == 0);
	printf("brk up 64 MiB after munmap: %s\n", syscall(SYS_brk, top + 64 * MIB) == top ? "refused" : "ok");
	new_thread("thread under the limit");
	r.rlim_cur = 1 * MIB;
	SHOW("lower RLIMIT_AS below use", setrlimit(RLIMIT_AS, &r));
	void *h = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap one page: %s\n", h == MAP_FAILED ? errno_name(errno) : "ok");
	r.rlim_cur = RLIM_INFINITY;
	SHOW("raise it back", setrlimit(RLIMIT_AS, &r));
	h = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap one page again: %s\n", h == MAP_FAILED ? errno_name(errno) : "ok");
}

static void pointers(void)
{
	struct rlimit r;
	void *bad = (void *)16;
	SHOW("getrlimit(NOFILE, NULL)", syscall(SYS_getrlimit, RLIMIT_NOFILE, NULL));
	SHOW("getrlimit(CORE, NULL)", syscall(SYS_getrlimit, RLIMIT_CORE, NULL));
	SHOW("getrlimit(999, NULL)", syscall(SYS_getrlimit, 999, NULL));
	SHOW("getrlimit(NOFILE, bad)", syscall(SYS_getrlimit, RLIMIT_NOFILE, bad));
	SHOW("setrlimit(NOFILE, NULL)", syscall(SYS_setrlimit, RLIMIT_NOFILE, NULL));
	SHOW("setrlimit(999, NULL)", syscall(SYS_setrlimit, 999, NULL));
	SHOW("setrlimit(AS, bad)", syscall(SYS_setrlimit, RLIMIT_AS, bad));
	SHOW("prlimit(0, NOFILE, NULL, NULL)", raw_prlimit(0, RLIMIT_NOFILE, NULL, NULL));
	SHOW("prlimit(0, CORE, NULL, NULL)", raw_prlimit(0, RLIMIT_CORE, NULL, NULL));
	SHOW("prlimit(0, 999, NULL, NULL)", raw_prlimit(0, 999, NULL, NULL));
	SHOW("prlimit(0, 16, NULL, NULL)", raw_prlimit(0, 16, NULL, NULL));
	SHOW("prlimit(0, NOFILE, bad, NULL)", raw_prlimit(0, RLIMIT_NOFILE, bad, NULL));
	SHOW("prlimit(-1, NOFILE, NULL, &r)", raw_prlimit(-1, RLIMIT_NOFILE, NULL, &r));
	SHOW("prlimit(INT_MAX, NOFILE, NULL, &r)", raw_prlimit(0x7fffffff, RLIMIT_NOFILE, NULL, &r));
	SHOW("prlimit(getpid(), NOFILE, NULL, &r)", raw_prlimit(getpid(), RLIMIT_NOFILE, NULL, &r));
	/* The new limit takes effect even though the old one cannot be stored. */
	CHECK(getrlimit(RLIMIT_NOFILE, &r) == 0);
	r.rlim_cur = 50;
	SHOW("prlimit(0, NOFILE, &50, bad)", raw_prlimit(0, RLIMIT_NOFILE, &r, bad));
	show_soft("RLIMIT_NOFILE now", RLIMIT_NOFILE);
	CHECK(getrlimit(RLIMIT_CORE, &r) == 0);
	r.rlim_cur = 0;
	SHOW("prlimit(0, CORE, &0, bad)", raw_prlimit(0, RLIMIT_CORE, &r, bad));
	show_limit("RLIMIT_CORE now", RLIMIT_CORE);
	r.rlim_cur = 2;
	r.rlim_max = 1;
	SHOW("prlimit(0, CORE, cur > max, NULL)", raw_prlimit(0, RLIMIT_CORE, &r, NULL));
	SHOW("prlimit(0, STACK, cur > max, NULL)", raw_prlimit(0, RLIMIT_STACK, &r, NULL));
	/* A low signal-queue, data or stack limit binds the payload only. */
	r.rlim_cur = r.rlim_max = 0;
	SHOW("RLIMIT_SIGPENDING to 0", setrlimit(RLIMIT_SIGPENDING, &r));
	r.rlim_cur = r.rlim_max = 64 * 1024;
	SHOW("RLIMIT_STACK to 64 KiB", setrlimit(RLIMIT_STACK, &r));
	new_thread("thread after the low limits");
	show_limit("RLIMIT_SIGPENDING now", RLIMIT_SIGPENDING);
	show_limit("RLIMIT_STACK now", RLIMIT_STACK);
}

/* Tries prlimit(NOFILE) on every tid given on stdin (the harness lists
 * km's threads), then new threads and the fd scan: nothing of km's may
 * appear. Prints nothing per tid, which differs between runs. */
static void tids(void)
{
	long tid;
	int own = 0;
	struct rlimit r = { 10, 10 };
	while (scanf("%ld", &tid) == 1)
		if (raw_prlimit(tid, RLIMIT_NOFILE, &r, NULL) == 0)
			own++;
	printf("some prlimit took effect: %s\n", yes(own > 0));
	show_limit("RLIMIT_NOFILE", RLIMIT_NOFILE);
	new_thread("thread after");
	new_thread("another thread");
	scan_fds();
}

/* Queues blocked RT signals to itself until the limit refuses one. */
static void queue_to_limit(void)
{
	uid_t uid = 61000 + getpid() % 1000;
	if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) {
		printf("sigpending: needs root to take a uid of its own\n");
		return;
	}
	struct rlimit lim = {8, 8};
	CHECK(setrlimit(RLIMIT_SIGPENDING, &lim) == 0);
	sigset_t set;
	sigemptyset(&set);
	for (int s = SIGRTMIN; s <= SIGRTMIN + 2; s++)
		sigaddset(&set, s);
	sigaddset(&set, SIGUSR1);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	int queued = 0, r;
	for (;;) {
		r = queued % 2 ? sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = queued})
			       : (int)syscall(SYS_tgkill, getpid(), gettid(), SIGRTMIN);
		if (r != 0 || queued == 1000)
			break;
		queued++;
	}
	printf("queued %d, then %s\n", queued, strerror(errno));
	printf("sigqueue of another RT signal: %s\n",
	       sigqueue(getpid(), SIGRTMIN + 1, (union sigval){0}) ? strerror(errno) : "queued");
	printf("kill with an RT signal: %s\n", kill(getpid(), SIGRTMIN + 2) ? strerror(errno) : "queued");
	printf("sigqueue of a standard signal: %s\n",
	       sigqueue(getpid(), SIGUSR1, (union sigval){0}) ? strerror(errno) : "queued");
	lim.rlim_cur = lim.rlim_max = 9;
	int raised = setrlimit(RLIMIT_SIGPENDING, &lim);
	printf("raising the hard limit as an unprivileged uid: %s\n", raised ? strerror(errno) : "done");
	int received = 0;
	struct timespec none = {0, 0};
	siginfo_t si;
	while (sigtimedwait(&set, &si, &none) > 0)
		received++;
	printf("received %d\n", received);
	printf("sigqueue once drained: %s\n",
	       sigqueue(getpid(), SIGRTMIN, (union sigval){0}) ? strerror(errno) : "queued");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (MODE("tid-nofile") || MODE("tid-as") || MODE("nofile") || MODE("tids"))
		close_inherited();
	if (MODE("tid-nofile"))
		through_tid(RLIMIT_NOFILE, 10);
	else if (MODE("tid-as"))
		through_tid(RLIMIT_AS, 256 * MIB);
	else if (MODE("nofile") && argc > 2)
		nofile(atoi(argv[2]));
	else if (MODE("as"))
		address_space();
	else if (MODE("pointers"))
		pointers();
	else if (MODE("tids")) {
		printf("ready\n");
		tids();
	} else if (MODE("pause")) {
		printf("ready\n");
		for (;;)
			pause();
	} else if (MODE("sigpending")) {
		queue_to_limit();
	} else if (MODE("wait")) {
		CHECK(pipe(wake) == 0);
		pthread_t t;
		CHECK(pthread_create(&t, NULL, parked, NULL) == 0);
		while (!other_tid)
			sched_yield();
		printf("ready\n");
		while (getchar() != EOF)
			;
		CHECK(write(wake[1], "x", 1) == 1);
		CHECK(pthread_join(t, NULL) == 0);
		printf("done\n");
	} else {
		fprintf(stderr, "usage: hostile-limits tid-nofile|tid-as|nofile N|as|pointers|tids|wait|pause|sigpending\n");
		return 2;
	}
	return 0;
}
