/* procs MODE [ARGS]: processes — fork, wait, exec, spawn, SIGCHLD.
 * Every child's pid is masked: only facts that are the same natively and
 * under km are printed. */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <fenv.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *ename(int e)
{
	switch (e) {
	case ECHILD: return "ECHILD";
	case ENOEXEC: return "ENOEXEC";
	case E2BIG: return "E2BIG";
	default: return errno_name(e);
	}
}

/* Like SHOW, with the wait errnos named. */
#define SHOWE(label, expr)                                                    \
	do {                                                                  \
		errno = 0;                                                    \
		long r_ = (long)(expr);                                       \
		printf("%s: %ld %s\n", label, r_, r_ < 0 ? ename(errno) : "0"); \
	} while (0)

static void show_status(const char *label, int st)
{
	if (WIFEXITED(st))
		printf("%s: exited %d\n", label, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("%s: killed by %s\n", label, signal_name(WTERMSIG(st)));
	else if (WIFSTOPPED(st))
		printf("%s: stopped by %s\n", label,
		       WSTOPSIG(st) == SIGTSTP   ? "SIGTSTP"
		       : WSTOPSIG(st) == SIGTTIN ? "SIGTTIN"
		       : WSTOPSIG(st) == SIGSTOP ? "SIGSTOP"
						 : signal_name(WSTOPSIG(st)));
	else
		printf("%s: status %#x\n", label, st);
}

static pid_t child_doing(void (*f)(int), int arg)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		f(arg);
		_exit(99);
	}
	return pid;
}

static void exit_with(int code) { _exit(code); }
static void raise_it(int sig) { raise(sig); }
static void segv(int unused)
{
	(void)unused;
	*(volatile int *)8 = 1;
}

/* Exit codes and deaths by signal, each seen by the parent as it was. */
static void wait_matrix(void)
{
	int codes[] = {0, 1, 42, 255};
	for (unsigned i = 0; i < sizeof codes / sizeof *codes; i++) {
		pid_t pid = child_doing(exit_with, codes[i]);
		int st;
		CHECK(waitpid(pid, &st, 0) == pid);
		show_status("exit", st);
	}
	int sigs[] = {SIGTERM, SIGKILL, SIGABRT, SIGUSR1};
	for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++) {
		pid_t pid = child_doing(raise_it, sigs[i]);
		int st;
		CHECK(waitpid(pid, &st, 0) == pid);
		show_status("raise", st);
	}
	pid_t pid = child_doing(segv, 0);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	show_status("fault", st);
	/* Several children, reaped in any order by wait(). */
	int sum = 0;
	for (int i = 1; i <= 5; i++)
		child_doing(exit_with, i);
	for (int i = 0; i < 5; i++) {
		CHECK(wait(&st) > 0);
		sum += WEXITSTATUS(st);
	}
	printf("sum of 5 children: %d\n", sum);
	SHOWE("wait with no children", wait(&st));
}

/* WNOHANG before the child ends, a zombie kept by WNOWAIT, then reaped. */
static void wnohang(void)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? c : 100);
	}
	close(p[0]);
	int st;
	printf("WNOHANG while running: %d\n", waitpid(pid, &st, WNOHANG));
	CHECK(write(p[1], "\x11", 1) == 1);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_PID, pid, &si, WEXITED | WNOWAIT) == 0);
	printf("waitid WNOWAIT: code %s status %d pid ok %s\n", si.si_code == CLD_EXITED ? "CLD_EXITED" : "other",
	       si.si_status, yes(si.si_pid == pid));
	CHECK(waitpid(pid, &st, 0) == pid);
	show_status("reaped", st);
	SHOWE("again", waitpid(pid, &st, WNOHANG));
	/* Process groups: the child in its own group, waited for by group. */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		CHECK(setpgid(0, 0) == 0);
		_exit(getpgid(0) == getpid() ? 5 : 6);
	}
	setpgid(pid, pid); /* races the child's own call; either wins */
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_PGID, pid, &si, WEXITED) == 0);
	printf("waitid P_PGID: status %d\n", si.si_status);
	pid = child_doing(exit_with, 8);
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_ALL, 0, &si, WEXITED) == 0);
	printf("waitid P_ALL: status %d pid ok %s\n", si.si_status, yes(si.si_pid == pid));
	SHOWE("waitid bad pointer", syscall(SYS_waitid, P_ALL, 0, (void *)8, WEXITED, 0));
	SHOWE("wait4 bad options", syscall(SYS_wait4, -1, 0, 0x1000, 0));
}

static volatile sig_atomic_t got_code, got_status, got_pid_ok, got;
static pid_t expected;

static void on_chld(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	got_code = si->si_code;
	got_status = si->si_status;
	got_pid_ok = si->si_pid == expected;
	got = 1;
}

static const char *cld(int code)
{
	switch (code) {
	case CLD_EXITED: return "CLD_EXITED";
	case CLD_KILLED: return "CLD_KILLED";
	case CLD_DUMPED: return "CLD_DUMPED";
	default: return "other";
	}
}

/* SIGCHLD with the child's siginfo; then an ignored SIGCHLD reaps. */
static void sigchld(void)
{
	struct sigaction sa = {.sa_sigaction = on_chld, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGCHLD, &sa, 0) == 0);
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	for (int round = 0; round < 2; round++) {
		sigprocmask(SIG_BLOCK, &block, &old);
		got = 0;
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			if (round == 0)
				_exit(7);
			raise(SIGKILL);
		}
		expected = pid;
		while (!got)
			sigsuspend(&old);
		sigprocmask(SIG_SETMASK, &old, 0);
		printf("SIGCHLD: %s status %d pid ok %s\n", cld(got_code), got_status, yes(got_pid_ok));
		int st;
		CHECK(waitpid(pid, &st, 0) == pid);
	}
	signal(SIGCHLD, SIG_IGN);
	for (int i = 0; i < 3; i++)
		child_doing(exit_with, 0);
	int st;
	/* Blocks until all three are gone, then ECHILD: nobody to reap. */
	SHOWE("ignored SIGCHLD, wait", wait(&st));
	signal(SIGCHLD, SIG_DFL);
	struct sigaction nocldwait = {.sa_handler = SIG_DFL, .sa_flags = SA_NOCLDWAIT};
	sigaction(SIGCHLD, &nocldwait, 0);
	child_doing(exit_with, 0);
	SHOWE("SA_NOCLDWAIT, wait", wait(&st));
}

/* Memory is copied, not shared; the FPU state goes with the child. */
static int global = 1;

static void memory(void)
{
	int *heap = malloc(sizeof *heap);
	*heap = 10;
	int p[2];
	CHECK(pipe(p) == 0);
	fesetround(FE_UPWARD);
	volatile double third = 1.0 / 3.0;
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		global = 2;
		*heap = 20;
		volatile double again = 1.0 / 3.0;
		char line[128];
		int n = snprintf(line, sizeof line, "child: global %d heap %d rounding upward %s same %s ppid ok %s\n",
				 global, *heap, yes(fegetround() == FE_UPWARD), yes(again == third),
				 yes(getppid() == (pid_t)syscall(SYS_getppid)));
		CHECK(write(p[1], line, n) == n);
		_exit(0);
	}
	close(p[1]);
	char buf[256];
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	CHECK(n > 0);
	buf[n] = 0;
	fputs(buf, stdout);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	printf("parent: global %d heap %d\n", global, *heap);
	fesetround(FE_TONEAREST);

	/* A raw fork syscall keeps every vector register (no call clobbers
	 * them): xmm0's 16 bytes come back in the child as they were. */
	uint64_t in[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull}, out[2] = {0, 0};
	long r = SYS_fork;
	__asm__ volatile("movdqu (%1), %%xmm0\n\t"
			 "syscall\n\t"
			 "movdqu %%xmm0, (%2)"
			 : "+a"(r)
			 : "r"(in), "r"(out)
			 : "rcx", "r11", "xmm0", "memory");
	if (r == 0)
		_exit(out[0] == in[0] && out[1] == in[1] ? 0 : 1);
	CHECK(waitpid(r, &st, 0) == r);
	printf("xmm0 across raw fork: %s\n", yes(WIFEXITED(st) && WEXITSTATUS(st) == 0));
}

/* Data through pipes both ways: the child upper-cases what it reads. */
static void pipes(void)
{
	int down[2], up[2];
	CHECK(pipe(down) == 0 && pipe(up) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		char c;
		while (read(down[0], &c, 1) == 1) {
			if (c >= 'a' && c <= 'z')
				c -= 32;
			CHECK(write(up[1], &c, 1) == 1);
		}
		_exit(0);
	}
	close(down[0]);
	close(up[1]);
	const char *msg = "hello through two pipes\n";
	CHECK(write(down[1], msg, strlen(msg)) == (ssize_t)strlen(msg));
	close(down[1]);
	char buf[64];
	ssize_t n, total = 0;
	while ((n = read(up[0], buf + total, sizeof buf - 1 - total)) > 0)
		total += n;
	buf[total] = 0;
	printf("back: %s", buf);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	show_status("pipe child", st);
}

/* vfork + exec, posix_spawn (file actions, failing exec), popen. */
static void spawn(const char *self)
{
	pid_t pid = vfork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execl(self, "procs", "echo", "from vfork", (char *)0);
		_exit(127);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	show_status("vfork+exec", st);

	/* A vfork child shares the parent's memory until it execs or exits:
	 * what it stored before _exit is the parent's. */
	static volatile int shared_word = 1;
	pid = vfork();
	CHECK(pid >= 0);
	if (pid == 0) {
		shared_word = 42;
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	printf("vfork child's store seen by the parent: %d\n", shared_word);

	int p[2];
	CHECK(pipe(p) == 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	char *args[] = {"procs", "echo", "spawned", "with", "args", 0};
	CHECK(posix_spawn(&pid, self, &fa, 0, args, environ) == 0);
	close(p[1]);
	char buf[128];
	ssize_t n, total = 0;
	while ((n = read(p[0], buf + total, sizeof buf - 1 - total)) > 0)
		total += n;
	buf[total] = 0;
	printf("spawn output: %s", buf);
	close(p[0]);
	CHECK(waitpid(pid, &st, 0) == pid);
	show_status("spawn", st);
	posix_spawn_file_actions_destroy(&fa);
	int e = posix_spawn(&pid, "./does-not-exist", 0, 0, args, environ);
	printf("spawn of a missing file: %s\n", ename(e));

	FILE *f = popen("echo popen line; exit 3", "r");
	CHECK(f != NULL);
	CHECK(fgets(buf, sizeof buf, f) != NULL);
	printf("popen read: %s", buf);
	show_status("pclose", pclose(f));
}

static volatile sig_atomic_t usr1_seen;
static void on_usr1(int s)
{
	(void)s;
	usr1_seen = 1;
}

/* Daemon: the grandchild outlives its parent and reports through a pipe;
 * getppid then names whoever adopted it, not the dead parent, and the
 * parent's death signal (PR_SET_PDEATHSIG) arrived. */
static void daemon_mode(void)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		CHECK(setsid() == getpid());
		pid_t mid = getpid();
		sigset_t usr1, old;
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		sigprocmask(SIG_BLOCK, &usr1, &old);
		signal(SIGUSR1, on_usr1);
		int ready[2];
		CHECK(pipe(ready) == 0);
		pid_t g = fork();
		CHECK(g >= 0);
		if (g > 0) {
			char c;
			/* Ends once the grandchild asked for a signal at its death. */
			CHECK(read(ready[0], &c, 1) == 1);
			_exit(0);
		}
		CHECK(prctl(PR_SET_PDEATHSIG, SIGUSR1) == 0);
		int sig = 0;
		CHECK(prctl(PR_GET_PDEATHSIG, &sig) == 0);
		CHECK(write(ready[1], "r", 1) == 1);
		while (!usr1_seen)
			sigsuspend(&old);
		while (getppid() == mid)
			usleep(1000);
		char line[128];
		int n = snprintf(line, sizeof line, "grandchild: session leader %s, death signal %s received %s\n",
				 yes(getsid(0) == mid), signal_name(sig), yes(usr1_seen));
		CHECK(write(p[1], line, n) == n);
		_exit(0);
	}
	close(p[1]);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	show_status("middle", st);
	char buf[160];
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	CHECK(n > 0);
	buf[n] = 0;
	fputs(buf, stdout);
}

static void handler(int s) { (void)s; }

/* exec PATH ARGS...: what survives an exec is checked by the new image
 * (mode exec-child). */
static void exec_keeps(const char *self)
{
	signal(SIGUSR1, SIG_IGN);
	signal(SIGTERM, handler);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, 0);
	int p[2];
	CHECK(pipe(p) == 0);
	CHECK(dup2(p[0], 10) == 10);
	CHECK(fcntl(p[1], F_DUPFD_CLOEXEC, 11) == 11);
	execl(self, "renamed-argv0", "exec-child", (char *)0);
	printf("exec failed: %s\n", ename(errno));
}

static void exec_child(char **argv)
{
	struct sigaction sa;
	sigaction(SIGUSR1, 0, &sa);
	printf("argv0: %s\n", argv[0]);
	printf("SIGUSR1 still ignored: %s\n", yes(sa.sa_handler == SIG_IGN));
	sigaction(SIGTERM, 0, &sa);
	printf("SIGTERM handler reset: %s\n", yes(sa.sa_handler == SIG_DFL));
	sigset_t set;
	sigprocmask(SIG_BLOCK, 0, &set);
	printf("SIGUSR2 still blocked: %s\n", yes(sigismember(&set, SIGUSR2)));
	printf("fd 10 kept: %s\n", yes(fcntl(10, F_GETFD) == 0));
	errno = 0;
	printf("fd 11 (cloexec) closed: %s\n", yes(fcntl(11, F_GETFD) < 0 && errno == EBADF));
	const char *execfn = (const char *)getauxval(AT_EXECFN);
	char exe[256] = "";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0)
		exe[n] = 0;
	printf("AT_EXECFN is exe: %s\n", yes(execfn && strcmp(execfn, exe) == 0));
}

static int sleeper_pipe[2];

static void *sleeper(void *arg)
{
	char c;
	(void)arg;
	CHECK(read(sleeper_pipe[0], &c, 1) == 1);
	return 0;
}

static void *forker(void *self)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* Only the forking thread lives on in the child. */
		printf("child of a thread: running\n");
		_exit(3);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	show_status("child of a thread", st);
	if (self) {
		execl(self, "procs", "echo", "exec from a thread", (char *)0);
		printf("exec failed: %s\n", ename(errno));
	}
	return 0;
}

/* fork from a second thread while a third blocks, then exec from it. */
static void threads(const char *self)
{
	pthread_t a, b;
	CHECK(pipe(sleeper_pipe) == 0);
	CHECK(pthread_create(&a, 0, sleeper, 0) == 0);
	CHECK(pthread_create(&b, 0, forker, 0) == 0);
	CHECK(pthread_join(b, 0) == 0);
	CHECK(pthread_create(&b, 0, forker, (void *)self) == 0);
	pause();
}

static void write_file(const char *name, const char *text, int mode)
{
	FILE *f = fopen(name, "w");
	CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
	CHECK(chmod(name, mode) == 0);
}

/* A failing exec returns Linux's errno and the caller goes on. */
static void exec_errors(void)
{
	char *args[] = {"x", 0};
	write_file("text", "no interpreter line\n", 0755);
	write_file("noexec", "#!/bin/sh\n", 0644);
	write_file("loop", "#!./loop\n", 0755);
	write_file("badinterp", "#!./missing-interpreter\n", 0755);
	CHECK(mkdir("dir", 0755) == 0);
	const char *paths[] = {"./missing", "./text", "./noexec", "./loop", "./badinterp", "./dir", "./text/x", ""};
	for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
		errno = 0;
		execve(paths[i], args, environ);
		printf("execve %s: %s\n", *paths[i] ? paths[i] : "(empty)", ename(errno));
	}
	errno = 0;
	syscall(SYS_execve, (void *)8, args, environ);
	printf("execve bad path pointer: %s\n", ename(errno));
	errno = 0;
	syscall(SYS_execve, "/bin/true", (void *)8, environ);
	printf("execve bad argv: %s\n", ename(errno));
	size_t big = 200 * 1024;
	char *huge = malloc(big);
	memset(huge, 'a', big - 1);
	huge[big - 1] = 0;
	char *bigargs[] = {"x", huge, 0};
	errno = 0;
	execve("/bin/true", bigargs, environ);
	printf("execve huge argument: %s\n", ename(errno));
	printf("still running\n");
}

static volatile sig_atomic_t chld_seen;


static void on_chld_count(int s)
{
	(void)s;
	chld_seen++;
}

/* A SIGCHLD handler without SA_RESTART while children come and go, as a
 * shell has: opens and reads of regular files and /dev/null never fail
 * with EINTR (Linux does not interrupt them), however the signals fall. */
static void no_eintr(void)
{
	struct sigaction sa = { .sa_handler = on_chld_count };
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
	int eintr = 0, children = 0;
	for (int i = 0; i < 150; i++) {
		pid_t c = fork();
		CHECK(c >= 0);
		if (c == 0)
			_exit(0);
		children++;
		for (int k = 0; k < 10; k++) {
			int f = open("/dev/null", O_WRONLY);
			if (f < 0) {
				eintr += errno == EINTR;
				continue;
			}
			char b[16];
			int g = open("/proc/self/status", O_RDONLY);
			if (g >= 0) {
				if (read(g, b, sizeof b) < 0 && errno == EINTR)
					eintr++;
				close(g);
			}
			close(f);
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	while (waitpid(-1, NULL, 0) > 0)
		;
	printf("children: %d, EINTR from open/read: %d, SIGCHLD handled: %s\n", children, eintr, yes(chld_seen > 0));
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (MODE("wait"))
		wait_matrix();
	else if (MODE("no-eintr"))
		no_eintr();
	else if (MODE("wnohang"))
		wnohang();
	else if (MODE("sigchld"))
		sigchld();
	else if (MODE("memory"))
		memory();
	else if (MODE("pipes"))
		pipes();
	else if (MODE("spawn"))
		spawn(argv[0]);
	else if (MODE("daemon"))
		daemon_mode();
	else if (MODE("exec-keeps"))
		exec_keeps(argv[0]);
	else if (MODE("exec-child"))
		exec_child(argv);
	else if (MODE("stop")) {
		int sigs[] = {SIGTSTP, SIGSTOP, SIGTTIN};
		for (unsigned i = 0; i < 3; i++) {
			int go[2];
			CHECK(pipe(go) == 0);
			pid_t pid = fork();
			CHECK(pid >= 0);
			if (pid == 0) {
				char c;
				/* Its own group, not orphaned: stops are not dropped. */
				CHECK(setpgid(0, 0) == 0);
				raise(sigs[i]);
				/* Exits only once the parent saw it continue. */
				_exit(read(go[0], &c, 1) == 1 ? 10 + i : 1);
			}
			int st;
			CHECK(waitpid(pid, &st, WUNTRACED) == pid);
			show_status("stop", st);
			CHECK(kill(pid, SIGCONT) == 0);
			siginfo_t si;
			memset(&si, 0, sizeof si);
			CHECK(waitid(P_PID, pid, &si, WCONTINUED) == 0);
			printf("continued: %s\n", yes(si.si_code == CLD_CONTINUED));
			CHECK(write(go[1], "g", 1) == 1);
			close(go[0]);
			close(go[1]);
			CHECK(waitpid(pid, &st, 0) == pid);
			show_status("then", st);
		}
	} else if (MODE("creds")) {
		SHOW("setresuid(-1, -1, -1)", setresuid(-1, -1, -1));
		SHOW("setresgid(-1, -1, -1)", setresgid(-1, -1, -1));
		SHOW("setuid(getuid())", setuid(getuid()));
		SHOW("setgid(getgid())", setgid(getgid()));
		SHOW("setreuid(-1, -1)", setreuid(-1, -1));
		uint32_t header[2] = {0, 0};
		SHOW("capget version probe", syscall(SYS_capget, header, 0) == 0 || errno == EINVAL);
		printf("preferred version 0x%x\n", header[0]);
		SHOW("capget bad header", syscall(SYS_capget, (void *)8, 0));
	} else if (MODE("threads"))
		threads(argv[0]);
	else if (MODE("exec-errors"))
		exec_errors();
	else if (MODE("fexecve") && argc > 2) {
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0);
		fexecve(fd, argv + 2, environ);
		printf("fexecve failed: %s\n", ename(errno));
	} else if (MODE("exec") && argc > 2)
		execv(argv[2], argv + 2), printf("exec failed: %s\n", ename(errno));
	else if (MODE("echo")) {
		for (int i = 2; i < argc; i++)
			printf("%s%s", argv[i], i + 1 < argc ? " " : "\n");
	} else {
		fprintf(stderr, "usage: procs MODE\n");
		return 2;
	}
	return 0;
}
