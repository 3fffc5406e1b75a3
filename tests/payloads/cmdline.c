/* What other processes see of a process's command line and environment
 * (/proc/<pid>/cmdline, environ, comm): the program's own, as ps, pidof and
 * pgrep -f read them.
 *
 *   cmdline fork      a forked child: the parent's arguments and environment
 *   cmdline exec      a child that exec'd with distinctive ones
 *   cmdline exec2     a child that exec'd twice: the second program's
 *   cmdline attack    a child tries to change its own with PR_SET_MM
 *   cmdline hold ...  prints "ready" and waits until its stdout's reader
 *                     is gone (for a shell's pidof / ps / pgrep)
 *
 * A child shown to the parent runs "waiter": it prints its own
 * /proc/self/cmdline, writes a byte to fd 20 and waits for EOF on fd 21. */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#ifndef PR_SET_MM
#define PR_SET_MM 35
#endif
#define MM_ARG_START 8
#define MM_MAP 14
#define MM_MAP_SIZE 15

/* The kernel's struct prctl_mm_map. */
struct mm_map {
	uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint64_t auxv;
	uint32_t auxv_size, exe_fd;
};

/* Above the pipes' own numbers. */
enum { READY_FD = 20, GATE_FD = 21 };

static char *const CHILD_ENV[] = { "CMDLINE_TEST=distinctive value", "EMPTY=", "LAST=1", NULL };
static char *const SECOND_ENV[] = { "SECOND=after exec", NULL };

static size_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	size_t n = 0;
	/* Small reads, so the kernel's offset handling is exercised too. */
	for (;;) {
		CHECK(n < size);
		size_t want = size - n < 7 ? size - n : 7;
		ssize_t r = read(fd, buf + n, want);
		CHECK(r >= 0);
		if (r == 0)
			break;
		n += r;
	}
	close(fd);
	return n;
}

/* The bytes with NULs shown as "\0". */
static void show(const char *label, const char *buf, size_t n)
{
	printf("%s (%zu): ", label, n);
	for (size_t i = 0; i < n; i++) {
		if (buf[i])
			putchar(buf[i]);
		else
			fputs("\\0", stdout);
	}
	putchar('\n');
}

static void show_proc(const char *who, const char *file)
{
	char path[64], buf[8192], label[64];
	snprintf(path, sizeof path, "/proc/%s/%s", who, file);
	snprintf(label, sizeof label, "%s", file);
	show(label, buf, read_file(path, buf, sizeof buf));
}

static int waiter(void)
{
	char buf[8192];
	show("own cmdline", buf, read_file("/proc/self/cmdline", buf, sizeof buf));
	fflush(stdout);
	CHECK(write(READY_FD, "r", 1) == 1);
	while (read(GATE_FD, buf, 1) > 0)
		;
	return 0;
}

/* Starts a child that runs `body` with the pipes on READY_FD and
 * GATE_FD, waits until it is ready, prints what /proc shows of it, lets
 * it go and reports how it ended. */
static void observe(void (*body)(const char *self), const char *self)
{
	int ready[2], gate[2];
	CHECK(pipe(ready) == 0 && pipe(gate) == 0);
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		CHECK(dup2(ready[1], READY_FD) == READY_FD && dup2(gate[0], GATE_FD) == GATE_FD);
		close(ready[0]);
		close(gate[1]);
		body(self);
		_exit(waiter());
	}
	close(ready[1]);
	close(gate[0]);
	char c;
	CHECK(read(ready[0], &c, 1) == 1);
	char who[16];
	snprintf(who, sizeof who, "%d", pid);
	show_proc(who, "cmdline");
	show_proc(who, "environ");
	show_proc(who, "comm");
	close(gate[1]);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	printf("child status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	close(ready[0]);
}

static void stay(const char *self)
{
	(void)self;
}

static void exec_child(const char *self)
{
	char *argv[] = { "cmdline-child", "waiter", "arg one", "", "--flag=x", NULL };
	execve(self, argv, CHILD_ENV);
	CHECK(!"execve");
}

static void exec_twice(const char *self)
{
	char *argv[] = { "first-name", "again", (char *)self, NULL };
	execve(self, argv, CHILD_ENV);
	CHECK(!"execve");
}

static int again(const char *self)
{
	char *argv[] = { "second-name", "waiter", "after exec", NULL };
	execve(self, argv, SECOND_ENV);
	CHECK(!"execve");
	return 1;
}

static const char *result(long r)
{
	return r == 0 ? "ok" : errno_name(errno);
}

/* What /proc/self/stat says: field n (from 1). */
static uint64_t stat_field(const char *stat, int n)
{
	const char *p = strrchr(stat, ')');
	CHECK(p);
	for (int field = 2; field < n; field++) {
		p = strchr(p + 1, ' ');
		CHECK(p);
	}
	return strtoull(p + 1, NULL, 10);
}

/* The child points its command line at a string of its own, as a
 * native unprivileged process may, then goes on as the waiter. */
static void attack(const char *self)
{
	(void)self;
	/* In anonymous memory, which is where the kernel reads it from. */
	static const char text[] = "pwned\0by payload";
	char *fake = malloc(sizeof text);
	CHECK(fake);
	memcpy(fake, text, sizeof text);
	char stat[1024];
	size_t n = read_file("/proc/self/stat", stat, sizeof stat - 1);
	stat[n] = 0;
	unsigned size = 0;
	long r = prctl(PR_SET_MM, MM_MAP_SIZE, &size, 0, 0);
	printf("PR_SET_MM_MAP_SIZE: %s\n", result(r));
	struct mm_map map = {
		.start_code = stat_field(stat, 26),
		.end_code = stat_field(stat, 27),
		.start_stack = stat_field(stat, 28),
		.start_data = stat_field(stat, 45),
		.end_data = stat_field(stat, 46),
		.start_brk = stat_field(stat, 47),
		.brk = (uint64_t)syscall(SYS_brk, 0),
		.arg_start = (uint64_t)fake,
		.arg_end = (uint64_t)fake + sizeof text,
		.env_start = (uint64_t)fake + sizeof text,
		.env_end = (uint64_t)fake + sizeof text,
		.exe_fd = (uint32_t)-1,
	};
	r = prctl(PR_SET_MM, MM_MAP, &map, sizeof map, 0);
	printf("PR_SET_MM_MAP: %s\n", result(r));
	r = prctl(PR_SET_MM, MM_ARG_START, fake, 0, 0);
	printf("PR_SET_MM_ARG_START: %s\n", result(r));
}

/* Waits, without a timeout, until the reader of stdout is gone. */
static int hold(void)
{
	puts("ready");
	fflush(stdout);
	struct pollfd p = { .fd = 1, .events = 0 };
	while (poll(&p, 1, -1) < 0)
		CHECK(errno == EINTR);
	return 0;
}

int main(int argc, char **argv)
{
	CHECK(argc >= 2);
	const char *mode = argv[1];
	if (!strcmp(mode, "waiter"))
		return waiter();
	if (!strcmp(mode, "again"))
		return again(argv[2]);
	if (!strcmp(mode, "hold"))
		return hold();
	void (*body)(const char *) = !strcmp(mode, "fork")    ? stay
				     : !strcmp(mode, "exec")  ? exec_child
				     : !strcmp(mode, "exec2") ? exec_twice
				     : !strcmp(mode, "attack") ? attack
							       : NULL;
	CHECK(body);
	observe(body, argv[0]);
	return 0;
}
