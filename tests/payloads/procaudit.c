/* What shells, init-like supervisors and test harnesses use around their
 * children: a child subreaper and the orphan it adopts, getppid after the
 * parent dies, the children's resource use (getrusage, times), pidfds
 * (pidfd_open, waitid P_PIDFD, pidfd_send_signal), clone3 flags km does
 * not know, and the credential and capability probes. */
#define _GNU_SOURCE
#include "common.h"

#include <sched.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r)
{
	printf("%s: %ld %s\n", what, r, r < 0 ? errno_name(errno) : "ok");
}

static void burn(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	do
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 50000000L);
}

/* A subreaper adopts the orphaned grandchild: the grandchild's getppid
 * names it once its parent is gone, and it reaps the grandchild. */
static void subreaper(void)
{
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	int on = 0;
	CHECK(prctl(PR_GET_CHILD_SUBREAPER, &on) == 0);
	printf("subreaper: %d\n", on);
	pid_t self = getpid();
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		pid_t parent = getpid();
		pid_t g = fork();
		CHECK(g >= 0);
		if (g == 0) {
			while (getppid() == parent)
				usleep(1000);
			char r = getppid() == self ? 'y' : 'n';
			CHECK(write(p[1], &r, 1) == 1);
			_exit(4);
		}
		CHECK(write(p[1], &(char){'g'}, 1) == 1);
		_exit(0);
	}
	close(p[1]);
	int st;
	CHECK(waitpid(c, &st, 0) == c);
	char b[2];
	CHECK(read(p[0], b, 1) == 1 && read(p[0], b + 1, 1) == 1);
	printf("orphan's getppid is the subreaper: %s\n", yes(b[1] == 'y'));
	pid_t g = wait(&st);
	printf("subreaper reaped the orphan: %s, exited %d\n", yes(g > 0 && g != c),
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 0) == 0);
	close(p[0]);
}

/* Resource use of waited-for children: none before (this runs first),
 * some after. */
static void children_usage(void)
{
	struct rusage ru;
	struct tms t;
	CHECK(getrusage(RUSAGE_CHILDREN, &ru) == 0 && times(&t) != (clock_t)-1);
	printf("before: children's cpu zero %s, cutime zero %s\n",
	       yes(ru.ru_utime.tv_sec + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec == 0),
	       yes(t.tms_cutime + t.tms_cstime == 0));
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		burn();
		_exit(0);
	}
	/* Not counted until waited for. */
	int st;
	CHECK(waitpid(c, &st, 0) == c);
	CHECK(getrusage(RUSAGE_CHILDREN, &ru) == 0 && times(&t) != (clock_t)-1);
	long us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
	printf("after: children's cpu at least 40 ms %s, cutime+cstime set %s\n", yes(us >= 40000),
	       yes(t.tms_cutime + t.tms_cstime > 0));
	show("getrusage bad who", getrusage(7, &ru));
	show("getrusage bad pointer", syscall(SYS_getrusage, RUSAGE_CHILDREN, (void *)8));
}

static void pidfds(void)
{
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		pause();
		_exit(1);
	}
	int fd = syscall(SYS_pidfd_open, c, 0);
	printf("pidfd_open: %s\n", yes(fd >= 0));
	show("pidfd_open bad flags", syscall(SYS_pidfd_open, c, 1));
	show("pidfd_open no such process", syscall(SYS_pidfd_open, 0x3ffffff0, 0));
	struct pollfd p = {.fd = fd, .events = POLLIN};
	show("poll while it runs", poll(&p, 1, 0));
	CHECK(syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0) == 0);
	CHECK(poll(&p, 1, -1) == 1);
	printf("readable once it ended: %s\n", yes(p.revents & POLLIN));
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_PIDFD, fd, &si, WEXITED) == 0);
	printf("waitid P_PIDFD: %s by signal %d, pid ok %s\n", si.si_code == CLD_KILLED ? "killed" : "other",
	       si.si_status, yes(si.si_pid == c));
	show("waitid P_PIDFD again", waitid(P_PIDFD, fd, &si, WEXITED));
	show("waitid P_PIDFD bad fd", waitid(P_PIDFD, 999, &si, WEXITED));
	close(fd);
}

/* clone3 with a flag no kernel knows: EINVAL, and no child. CLONE_PIDFD
 * gives the parent a close-on-exec pidfd of the child, through clone3's
 * pidfd field or clone's parent-tid pointer (so not with
 * CLONE_PARENT_SETTID). */
static void clone_flags(void)
{
	struct {
		unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	} args = {.flags = 1ULL << 40, .exit_signal = SIGCHLD};
	show("clone3 unknown flag", syscall(SYS_clone3, &args, sizeof args));
	args.flags = 0;
	show("clone3 size too small", syscall(SYS_clone3, &args, 8));
	show("wait, no child", wait(NULL));

	int pidfd = -1;
	args.flags = CLONE_PIDFD;
	args.pidfd = (unsigned long long)&pidfd;
	long c = syscall(SYS_clone3, &args, sizeof args);
	CHECK(c >= 0);
	if (c == 0)
		syscall(SYS_exit_group, 5);
	int flags = fcntl(pidfd, F_GETFD);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_PIDFD, pidfd, &si, WEXITED) == 0);
	printf("clone3 CLONE_PIDFD: cloexec %s, waitid P_PIDFD: status %d pid ok %s\n", yes(flags & FD_CLOEXEC),
	       si.si_status, yes(si.si_pid == c));
	close(pidfd);

	pidfd = -1;
	c = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, &pidfd, 0, 0);
	CHECK(c >= 0);
	if (c == 0)
		syscall(SYS_exit_group, 6);
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_PIDFD, pidfd, &si, WEXITED) == 0);
	printf("clone CLONE_PIDFD: status %d pid ok %s\n", si.si_status, yes(si.si_pid == c));
	close(pidfd);
	show("clone CLONE_PIDFD with CLONE_PARENT_SETTID",
	     syscall(SYS_clone, CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, 0, &pidfd, 0, 0));
	show("clone3 CLONE_PIDFD bad pointer",
	     (args.pidfd = 8, syscall(SYS_clone3, &args, sizeof args)));
}

/* linux/capability.h's version 3 structs (musl has no kernel headers). */
struct cap_header {
	unsigned version;
	int pid;
};
struct cap_data {
	unsigned effective, permitted, inheritable;
};

static void credentials(void)
{
	gid_t groups[64];
	int n = getgroups(64, groups);
	CHECK(n >= 0);
	long r = setgroups(n, groups);
	printf("setgroups(same list): %s\n", r == 0 ? "0" : errno_name(errno));
	show("setgroups bad pointer", setgroups(1, (gid_t *)8));
	struct cap_header h = {.version = 0x20080522, .pid = 0};
	struct cap_data d[2];
	show("capget", syscall(SYS_capget, &h, d));
	show("capset same", syscall(SYS_capset, &h, d));
	h.pid = 0x3ffffff0;
	show("capget no such process", syscall(SYS_capget, &h, d));
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	children_usage();
	subreaper();
	pidfds();
	clone_flags();
	credentials();
	return 0;
}
