/* info MODE: clocks and process facts.
 *   time       - clocks are sane and monotonic, sleeps last long enough,
 *                the time APIs agree; prints only pass/fail lines
 *   proc PPID  - identity and system facts; PPID is the harness's pid,
 *                which is the parent natively and km's parent under km
 * Values that differ from run to run are checked, never printed. */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static void pass(const char *what, int ok)
{
	printf("%s: %s\n", what, ok ? "pass" : "FAIL");
}

static long long ns(const struct timespec *t)
{
	return t->tv_sec * 1000000000LL + t->tv_nsec;
}

static long long now(clockid_t c)
{
	struct timespec t;
	CHECK(clock_gettime(c, &t) == 0);
	CHECK(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
	return ns(&t);
}

static void clocks(void)
{
	pass("realtime after 2020", now(CLOCK_REALTIME) > 1577836800LL * 1000000000LL);

	long long prev = now(CLOCK_MONOTONIC);
	int mono = 1;
	for (int i = 0; i < 1000; i++) {
		long long t = now(CLOCK_MONOTONIC);
		mono &= t >= prev;
		prev = t;
	}
	pass("monotonic never goes back", mono);
	long long mono_first = now(CLOCK_MONOTONIC);
	pass("boottime >= monotonic", now(CLOCK_BOOTTIME) >= mono_first);
	struct timespec res;
	pass("monotonic resolution <= 1ms",
	     clock_getres(CLOCK_MONOTONIC, &res) == 0 && ns(&res) > 0 && ns(&res) <= 1000000);

	long long t0 = now(CLOCK_MONOTONIC);
	struct timespec ten_ms = {0, 10000000};
	CHECK(nanosleep(&ten_ms, NULL) == 0);
	long long slept = now(CLOCK_MONOTONIC) - t0;
	pass("nanosleep 10ms lasts >= 10ms", slept >= 10000000);
	pass("nanosleep 10ms lasts < 5s", slept < 5000000000LL);
	t0 = now(CLOCK_MONOTONIC);
	CHECK(clock_nanosleep(CLOCK_MONOTONIC, 0, &ten_ms, NULL) == 0);
	pass("clock_nanosleep 10ms lasts >= 10ms", now(CLOCK_MONOTONIC) - t0 >= 10000000);
	struct timespec bad = {0, 1000000000L};
	errno = 0;
	pass("nanosleep rejects tv_nsec 1e9", nanosleep(&bad, NULL) == -1 && errno == EINVAL);

	struct timeval tv;
	CHECK(gettimeofday(&tv, NULL) == 0);
	long long rt = now(CLOCK_REALTIME);
	long long tod = tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
	pass("gettimeofday agrees with clock_gettime", rt - tod >= 0 && rt - tod < 1000000000LL);
	time_t t = time(NULL);
	pass("time agrees with clock_gettime", llabs(now(CLOCK_REALTIME) / 1000000000LL - t) <= 1);
	struct timespec raw;
	CHECK(syscall(SYS_clock_gettime, CLOCK_REALTIME, &raw) == 0);
	pass("raw syscall agrees with libc", llabs(now(CLOCK_REALTIME) - ns(&raw)) < 1000000000LL);
	pass("process cputime is positive", now(CLOCK_PROCESS_CPUTIME_ID) > 0);
}

static void identity(long ppid)
{
	char self[32] = {0};
	CHECK(readlink("/proc/self", self, sizeof self - 1) > 0);
	printf("getpid > 0 and is /proc/self: %s\n",
	       getpid() > 0 && atol(self) == getpid() ? "yes" : "no");
	printf("getppid is the harness: %s\n", getppid() == ppid ? "yes" : "no");
	printf("gettid == getpid: %s\n", syscall(SYS_gettid) == getpid() ? "yes" : "no");
	printf("getpgid(0) == getpgrp: %s\n", getpgid(0) == getpgrp() ? "yes" : "no");
	printf("uid %u euid==uid %s gid %u egid==gid %s\n", getuid(),
	       geteuid() == getuid() ? "yes" : "no", getgid(), getegid() == getgid() ? "yes" : "no");

	struct utsname u;
	CHECK(uname(&u) == 0);
	printf("sysname %s machine %s\n", u.sysname, u.machine);
	char release[sizeof u.release] = {0};
	int fd = open("/proc/sys/kernel/osrelease", O_RDONLY);
	CHECK(fd >= 0 && read(fd, release, sizeof release - 1) > 0 && close(fd) == 0);
	release[strcspn(release, "\n")] = 0;
	printf("release matches /proc: %s\n", strcmp(release, u.release) == 0 ? "yes" : "no");

	struct rlimit rl;
	CHECK(getrlimit(RLIMIT_STACK, &rl) == 0);
	if (rl.rlim_cur == RLIM_INFINITY)
		printf("RLIMIT_STACK cur unlimited\n");
	else
		printf("RLIMIT_STACK cur %llu\n", (unsigned long long)rl.rlim_cur);

	struct sysinfo si;
	CHECK(sysinfo(&si) == 0);
	printf("sysinfo sane: %s\n",
	       si.uptime > 0 && si.totalram > 0 && si.mem_unit >= 1 && si.procs > 0 ? "yes" : "no");

	unsigned char a[32], b[32];
	CHECK(getrandom(a, sizeof a, 0) == sizeof a);
	CHECK(getrandom(b, sizeof b, GRND_NONBLOCK) == sizeof b);
	int nonzero = 0;
	for (size_t i = 0; i < sizeof a; i++)
		nonzero |= a[i];
	printf("getrandom 32 bytes, non-zero: %s, calls differ: %s\n", nonzero ? "yes" : "no",
	       memcmp(a, b, sizeof a) ? "yes" : "no");

	cpu_set_t set;
	CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
	printf("sched_getaffinity cpus: %d\n", CPU_COUNT(&set));
}

int main(int argc, char **argv)
{
	if (MODE("time"))
		clocks();
	else if (MODE("proc") && argc == 3)
		identity(atol(argv[2]));
	else {
		fprintf(stderr, "usage: info time|proc PPID\n");
		return 2;
	}
	return 0;
}
