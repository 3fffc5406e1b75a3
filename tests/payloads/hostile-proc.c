/* The payload's own /proc, tried as a hostile payload would: every route to
 * /proc/<pid> (self, thread-self, pid, tid, task/tid, symlinks, "..", dirfds,
 * a cwd inside /proc, root/ and cwd/ links, openat2) must show this process
 * and nothing of the monitor it may run in (its memory, mappings, fds,
 * threads). Natively this is what Linux shows; under km it is km's view.
 *
 * Usage: hostile-proc MODE DIR [PROBE_HEX]
 *   mem      /proc/<pid>/mem through every route: own bytes read and
 *            written (read-only pages too, as Linux's FOLL_FORCE), EIO
 *            outside the payload's mappings and at PROBE_HEX
 *   scan     /proc/self/mem read at every 4 GiB step of the user half
 *            outside the payload's own mappings: nothing readable
 *   maps     /proc/self/maps lists exactly the payload's mappings
 *   fds      /proc/self/fd and fdinfo list only the payload's fds; no fd up
 *            to 66136 opens or names a kvm device, VM or vCPU
 *   tasks    /proc/self/task lists only the payload's threads
 *   self     exe, cmdline, environ, auxv, limits, cwd, root
 *   paths    stat, access, readlink, getdents, chdir, getcwd on /proc
 *   openat2  openat2's RESOLVE_* flags */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"

extern char **environ;

static const char marker[] = "hostile-proc marker 0123456789";
static const char rodata[32] = "read-only bytes of the payload";
static char data[32] = "writable bytes of the payload";
static uint64_t probe;
static const char *dir;

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* The payload's mappings, from its own /proc/self/maps. */
static struct range {
	uint64_t start, end;
	char perms[5];
	char name[PATH_MAX];
} ranges[512];
static int nranges;

static void read_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL);
	char line[PATH_MAX + 128];
	nranges = 0;
	while (fgets(line, sizeof line, f) && nranges < 512) {
		struct range *r = &ranges[nranges++];
		int used = 0;
		r->name[0] = 0;
		CHECK(sscanf(line, "%lx-%lx %4s %*x %*x:%*x %*u %n", &r->start, &r->end, r->perms, &used) >= 3);
		char *name = line + used;
		name[strcspn(name, "\n")] = 0;
		snprintf(r->name, sizeof r->name, "%s", name);
	}
	fclose(f);
}

static struct range *range_of(uint64_t a)
{
	for (int i = 0; i < nranges; i++)
		if (a >= ranges[i].start && a < ranges[i].end)
			return &ranges[i];
	return NULL;
}

/* One route to mem: reads its own bytes, writes its data and its read-only
 * data, and fails with EIO where it has nothing mapped. */
static void try_mem(const char *route, int fd)
{
	if (fd < 0) {
		printf("%s: open %s\n", route, errno_name(errno));
		return;
	}
	char buf[64] = { 0 };
	int own = pread(fd, buf, sizeof marker, (off_t)(uintptr_t)marker) == (ssize_t)sizeof marker &&
		  memcmp(buf, marker, sizeof marker) == 0;
	int wrote = pwrite(fd, "W", 1, (off_t)(uintptr_t)data) == 1 && ((volatile char *)data)[0] == 'W';
	((volatile char *)data)[0] = 'w';
	int forced = pwrite(fd, "R", 1, (off_t)(uintptr_t)rodata) == 1 && ((volatile const char *)rodata)[0] == 'R';
	if (forced)
		pwrite(fd, "r", 1, (off_t)(uintptr_t)rodata);
	errno = 0;
	ssize_t low = pread(fd, buf, 4, 0x1000);
	const char *low_err = errno_name(errno);
	errno = 0;
	ssize_t far = probe ? pread(fd, buf, 4, (off_t)probe) : -1;
	const char *far_err = probe ? errno_name(errno) : "none";
	if (far == 4 && memcmp(buf, "\177ELF", 4) == 0)
		printf("%s: READ AN ELF HEADER AT THE PROBE\n", route);
	printf("%s: own %s, write %s, read-only write %s, unmapped %zd %s, probe %zd %s\n", route, yes(own),
	       yes(wrote), yes(forced), low, low_err, far, far_err);
	close(fd);
}

static pthread_mutex_t hold = PTHREAD_MUTEX_INITIALIZER;
static pid_t tids[3];
static volatile int started;

static void *sleeper(void *arg)
{
	tids[(long)arg] = gettid_();
	__sync_fetch_and_add(&started, 1);
	pthread_mutex_lock(&hold);
	pthread_mutex_unlock(&hold);
	return NULL;
}

static pthread_t threads[2];

static void start_threads(void)
{
	pthread_mutex_lock(&hold);
	for (long i = 1; i <= 2; i++)
		CHECK(pthread_create(&threads[i - 1], NULL, sleeper, (void *)i) == 0);
	while (started < 2)
		sched_yield();
	tids[0] = getpid();
}

static void stop_threads(void)
{
	pthread_mutex_unlock(&hold);
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
}

static int openf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int openf(const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(path, sizeof path, fmt, ap);
	va_end(ap);
	return open(path, O_RDWR | O_CLOEXEC);
}

static void mode_mem(void)
{
	start_threads();
	pid_t pid = getpid(), tid = tids[1];
	try_mem("self", openf("/proc/self/mem"));
	try_mem("thread-self", openf("/proc/thread-self/mem"));
	try_mem("pid", openf("/proc/%d/mem", pid));
	try_mem("tid", openf("/proc/%d/mem", tid));
	try_mem("task tid", openf("/proc/self/task/%d/mem", tid));
	try_mem("pid task tid", openf("/proc/%d/task/%d/mem", pid, tid));
	try_mem("tid task tid", openf("/proc/%d/task/%d/mem", tid, tid));
	try_mem("thread-self dotdot", openf("/proc/thread-self/../../mem"));
	try_mem("fd dotdot", openf("/proc/self/fd/../mem"));
	try_mem("task dotdot", openf("/proc/self/task/%d/../../mem", tid));
	try_mem("proc dotdot", openf("/proc/../proc/self/../%d/mem", pid));
	try_mem("root link", openf("/proc/self/root/proc/self/mem"));
	try_mem("root of tid", openf("/proc/%d/root/proc/%d/mem", tid, tid));

	CHECK(chdir(dir) == 0);
	CHECK(symlink("/proc/self", "self-link") == 0);
	CHECK(symlink("/proc/self/mem", "mem-link") == 0);
	CHECK(symlink("self-link", "link-link") == 0);
	CHECK(symlink("/proc", "proc-link") == 0);
	try_mem("symlink dir", openf("self-link/mem"));
	try_mem("symlink file", openf("mem-link"));
	try_mem("symlink chain", openf("link-link/mem"));
	try_mem("symlink proc", openf("proc-link/%d/mem", pid));
	try_mem("cwd link", openf("/proc/self/cwd/self-link/mem"));
	try_mem("cwd link dotdot", openf("/proc/self/cwd/../%s/mem-link", strrchr(dir, '/') + 1));

	int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int self = open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int self_path = open("/proc/self", O_PATH | O_CLOEXEC);
	int task = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(proc >= 0 && self >= 0 && self_path >= 0 && task >= 0);
	try_mem("dirfd proc", openat(proc, "self/mem", O_RDWR | O_CLOEXEC));
	char name[64];
	snprintf(name, sizeof name, "%d/mem", tid);
	try_mem("dirfd proc tid", openat(proc, name, O_RDWR | O_CLOEXEC));
	try_mem("dirfd self", openat(self, "mem", O_RDWR | O_CLOEXEC));
	try_mem("dirfd self dotdot", openat(self, "../self/mem", O_RDWR | O_CLOEXEC));
	try_mem("dirfd O_PATH self", openat(self_path, "mem", O_RDWR | O_CLOEXEC));
	try_mem("dirfd task", openat(task, name, O_RDWR | O_CLOEXEC));
	try_mem("fd link to dir", openf("/proc/self/fd/%d/mem", self));
	try_mem("thread-self fd link", openf("/proc/thread-self/fd/%d/mem", self));

	CHECK(chdir("/proc/self") == 0);
	try_mem("cwd self", openf("mem"));
	try_mem("cwd self dotdot", openf("../self/mem"));
	CHECK(chdir("/proc") == 0);
	try_mem("cwd proc", openf("self/mem"));
	CHECK(fchdir(self) == 0);
	try_mem("fchdir self", openf("mem"));
	try_mem("fchdir self cwd link", openf("cwd/mem"));
	CHECK(chdir(dir) == 0);

	int via_at2 = (int)syscall(SYS_openat2, AT_FDCWD, "/proc/self/mem",
				   &(struct { uint64_t f, m, r; }){ O_RDWR, 0, 0 }, 24);
	try_mem("openat2", via_at2);

	/* The same open file through dup, dup2, F_DUPFD, readv and lseek. */
	int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	try_mem("dup", dup(fd));
	try_mem("dup2", dup2(fd, 100));
	try_mem("F_DUPFD", fcntl(fd, F_DUPFD_CLOEXEC, 200));
	char a[8] = { 0 }, b[8] = { 0 };
	struct iovec iov[2] = { { a, 6 }, { b, 8 } };
	SHOW("lseek to marker", lseek(fd, (off_t)(uintptr_t)marker, SEEK_SET) == (off_t)(uintptr_t)marker);
	SHOW("readv", readv(fd, iov, 2));
	printf("readv bytes: %s\n", yes(memcmp(a, marker, 6) == 0 && memcmp(b, marker + 6, 8) == 0));
	SHOW("position after readv", lseek(fd, 0, SEEK_CUR) == (off_t)(uintptr_t)marker + 14);
	SHOW("read", read(fd, a, 4));
	printf("read bytes: %s\n", yes(memcmp(a, marker + 14, 4) == 0));
	SHOW("preadv", preadv(fd, iov, 1, (off_t)(uintptr_t)marker));
	SHOW("lseek SEEK_END", lseek(fd, 0, SEEK_END));
	int ro = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	SHOW("write to read-only mem fd", pwrite(ro, "x", 1, (off_t)(uintptr_t)data));
	int wo = open("/proc/self/mem", O_WRONLY | O_CLOEXEC);
	SHOW("read from write-only mem fd", pread(wo, a, 1, (off_t)(uintptr_t)data));
	/* A read across the end of a mapping stops there. */
	char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(page != MAP_FAILED);
	CHECK(munmap(page + 4096, 4096) == 0);
	char big[64];
	SHOW("read across a mapping's end", pread(fd, big, sizeof big, (off_t)(uintptr_t)(page + 4096 - 16)));
	CHECK(mprotect(page, 4096, PROT_NONE) == 0);
	SHOW("read of PROT_NONE", pread(fd, big, 16, (off_t)(uintptr_t)page));
	stop_threads();
}

static void mode_scan(void)
{
	read_maps();
	int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	long readable = 0, elf = 0, probes = 0;
	for (uint64_t a = 0; a < (1ull << 47); a += 1ull << 32) {
		uint64_t at = a ? a : 0x1000;
		if (range_of(at))
			continue;
		char buf[4];
		probes++;
		if (pread(fd, buf, 4, (off_t)at) > 0) {
			readable++;
			elf += memcmp(buf, "\177ELF", 4) == 0;
		}
	}
	if (probe) {
		char buf[4];
		probes++;
		if (pread(fd, buf, 4, (off_t)probe) > 0) {
			readable++;
			elf += memcmp(buf, "\177ELF", 4) == 0;
		}
	}
	printf("probed outside own mappings: %s\n", yes(probes > 30000));
	printf("readable: %ld, ELF headers: %ld\n", readable, elf);
	/* Every mapping it has is readable through mem, at its first byte. */
	long own = 0;
	for (int i = 0; i < nranges; i++) {
		char c;
		if (strcmp(ranges[i].name, "[vvar]") == 0 || strncmp(ranges[i].name, "[vvar", 5) == 0)
			continue;
		own += pread(fd, &c, 1, (off_t)ranges[i].start) == 1;
	}
	printf("own mappings readable: %s\n", yes(own > 3));
}

static void mode_maps(void)
{
	char path[PATH_MAX];
	CHECK(snprintf(path, sizeof path, "%s/mapped", dir) > 0);
	int f = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(f >= 0 && ftruncate(f, 3 * 4096) == 0);
	char *m = mmap(NULL, 2 * 4096, PROT_READ, MAP_SHARED, f, 4096);
	CHECK(m != MAP_FAILED);
	char *heap = malloc(100000);
	char *brk_now = sbrk(0);
	int local;
	read_maps();
	struct range *code = range_of((uintptr_t)marker), *mine = range_of((uintptr_t)m);
	struct range *stack = range_of((uintptr_t)&local);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	CHECK(n > 0);
	exe[n] = 0;
	printf("image named after exe: %s\n", yes(code && strcmp(code->name, exe) == 0));
	printf("file mapping named: %s\n", yes(mine && strcmp(mine->name, path) == 0));
	printf("file mapping shared read-only: %s\n", yes(mine && strcmp(mine->perms, "r--s") == 0));
	printf("stack: %s\n", yes(stack && strcmp(stack->name, "[stack]") == 0));
	printf("heap or mmap holds malloc: %s\n", yes(range_of((uintptr_t)heap) != NULL));
	printf("break inside [heap]: %s\n",
	       yes(brk_now == (char *)-1 || !range_of((uintptr_t)brk_now - 1) ||
		   strcmp(range_of((uintptr_t)brk_now - 1)->name, "[heap]") == 0));
	int vdso = 0, bad = 0, sorted = 1;
	for (int i = 0; i < nranges; i++) {
		const char *nm = ranges[i].name;
		vdso += strcmp(nm, "[vdso]") == 0;
		if (i && ranges[i].start < ranges[i - 1].end)
			sorted = 0;
		/* Only its own image, its own file, or the kernel's names. */
		if (nm[0] && nm[0] != '[' && strcmp(nm, exe) != 0 && strcmp(nm, path) != 0) {
			printf("foreign mapping: %s\n", nm);
			bad++;
		}
		if (strstr(nm, "kvm") || strstr(nm, "/km"))
			bad++;
	}
	printf("vdso: %s\n", yes(vdso == (getauxval(AT_SYSINFO_EHDR) != 0)));
	printf("sorted, disjoint: %s\n", yes(sorted));
	printf("foreign mappings: %d\n", bad);
	/* The line of the file mapping carries its offset. */
	FILE *mf = fopen("/proc/self/maps", "r");
	char line[PATH_MAX + 128];
	unsigned long off = 1;
	while (fgets(line, sizeof line, mf)) {
		unsigned long s;
		if (sscanf(line, "%lx-%*x %*4s %lx", &s, &off) == 2 && s == (uintptr_t)m)
			break;
	}
	fclose(mf);
	printf("file mapping offset: %lx\n", off);
	SHOW("smaps or refusal", access("/proc/self/smaps", F_OK) == 0 || errno == ENOENT);
	munmap(m, 2 * 4096);
	close(f);
}

static int is_kvm_name(const char *s)
{
	return strstr(s, "kvm") != NULL || strstr(s, "kkm") != NULL;
}

/* Prints how many fds a listing shows (the same natively and under km,
 * whatever the test runner let the payload inherit) and whether they are
 * all low numbers, as a payload's are. */
static int list_fds(const char *label, const char *path)
{
	DIR *d = opendir(path);
	if (!d) {
		printf("%s: %s\n", label, errno_name(errno));
		return -1;
	}
	int count = 0, max = -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int n = atoi(e->d_name);
		count++;
		if (n > max)
			max = n;
	}
	closedir(d);
	printf("%s: %d entries, all below 1000: %s\n", label, count, yes(max < 1000));
	return count;
}

static void mode_fds(void)
{
	int listed = list_fds("fd", "/proc/self/fd");
	list_fds("fdinfo", "/proc/self/fdinfo");
	list_fds("thread-self fd", "/proc/thread-self/fd");
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/task/%d/fd", getpid(), getpid());
	list_fds("task fd", p);
	int links = 0, opened = 0, kvm = 0;
	for (int n = 0; n < 65536 + 600; n++) {
		char path[64], target[PATH_MAX];
		snprintf(path, sizeof path, "/proc/self/fd/%d", n);
		ssize_t len = readlink(path, target, sizeof target - 1);
		if (len < 0) {
			/* Where km's own fds would be, nothing else either. */
			if (n >= 65536 - 600) {
				snprintf(path, sizeof path, "/proc/self/fdinfo/%d", n);
				kvm += access(path, F_OK) == 0;
			}
			continue;
		}
		target[len] = 0;
		links++;
		kvm += is_kvm_name(target);
		int fd = open(path, O_PATH | O_CLOEXEC);
		if (fd >= 0) {
			struct stat st;
			opened++;
			if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 10 &&
			    minor(st.st_rdev) == 232)
				kvm++;
			close(fd);
		}
	}
	/* The listing's own fd is gone: one link fewer than it listed. */
	printf("fd links: %s, opened all: %s\n", yes(links == listed - 1), yes(opened == links));
	printf("kvm or km: %d\n", kvm);
	SHOW("fd above the limit by dirfd", openat(open("/proc/self/fd", O_RDONLY | O_DIRECTORY), "66000", O_RDONLY));
}

static void mode_tasks(void)
{
	start_threads();
	DIR *d = opendir("/proc/self/task");
	CHECK(d != NULL);
	int count = 0, ours = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		pid_t t = atoi(e->d_name);
		count++;
		ours += t == tids[0] || t == tids[1] || t == tids[2];
	}
	closedir(d);
	printf("tasks: %d, ours: %d\n", count, ours);
	/* Threads near ours that are not ours are not in this process. */
	int strangers = 0;
	pid_t pid = getpid();
	/* Unique to this process: another process running this same program
	 * (the suite runs cases in parallel) has the marker at the same
	 * address, but not this stamp. */
	static volatile pid_t stamp;
	stamp = pid;
	for (pid_t t = pid > 50 ? pid - 50 : 1; t < pid + 400; t++) {
		if (t == tids[0] || t == tids[1] || t == tids[2])
			continue;
		char path[64];
		snprintf(path, sizeof path, "/proc/self/task/%d", t);
		strangers += access(path, F_OK) == 0;
		snprintf(path, sizeof path, "/proc/%d/task/%d", pid, t);
		strangers += access(path, F_OK) == 0;
		snprintf(path, sizeof path, "/proc/%d/status", t);
		/* Another process's is fine; one whose Tgid is ours is not. */
		FILE *f = fopen(path, "r");
		if (f) {
			char line[256];
			while (fgets(line, sizeof line, f))
				if (strncmp(line, "Tgid:", 5) == 0 && atoi(line + 5) == pid)
					strangers++;
			fclose(f);
		}
		snprintf(path, sizeof path, "/proc/%d/mem", t);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			pid_t seen = 0;
			/* Readable own memory through another's mem means it is us. */
			strangers += pread(fd, &seen, sizeof seen, (off_t)(uintptr_t)&stamp) == sizeof seen && seen == pid;
			close(fd);
		}
	}
	printf("threads of ours not ours: %d\n", strangers);
	stop_threads();
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t n;
	while (len < size && (n = read(fd, buf + len, size - len)) > 0)
		len += n;
	close(fd);
	return (int)len;
}

static unsigned long limit_line(const char *text, const char *name, int hard)
{
	const char *l = strstr(text, name);
	if (!l)
		return 0;
	char soft[32], hardv[32];
	if (sscanf(l + 25, "%31s %31s", soft, hardv) != 2)
		return 0;
	const char *v = hard ? hardv : soft;
	return strcmp(v, "unlimited") == 0 ? RLIM_INFINITY : strtoul(v, NULL, 10);
}

static void on_usr2(int s)
{
	(void)s;
}

/* The value of "Key:" in a status file, or -1. */
static long status_value(const char *text, const char *key, int base)
{
	const char *l = strstr(text, key);
	return l ? strtol(l + strlen(key), NULL, base) : -1;
}

/* status, stat and statm describe this process: its threads, its signal
 * dispositions and mask, its argument and environment areas, its memory. */
static void mode_status(void)
{
	static char buf[8192];
	start_threads();
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, on_usr2);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int len = read_file("/proc/self/status", buf, sizeof buf - 1);
	CHECK(len > 0);
	buf[len] = 0;
	printf("status Tgid and Pid are ours: %s\n",
	       yes(status_value(buf, "\nTgid:", 10) == getpid() && status_value(buf, "\nPid:", 10) == getpid()));
	printf("status Threads: %ld\n", status_value(buf, "\nThreads:", 10));
	long ign = status_value(buf, "\nSigIgn:", 16), cgt = status_value(buf, "\nSigCgt:", 16);
	long blk = status_value(buf, "\nSigBlk:", 16);
	printf("status SigIgn has SIGUSR1: %s, SigCgt has SIGUSR2: %s, SigBlk has SIGWINCH: %s\n",
	       yes(ign >= 0 && ign & (1L << (SIGUSR1 - 1))), yes(cgt >= 0 && cgt & (1L << (SIGUSR2 - 1))),
	       yes(blk >= 0 && blk & (1L << (SIGWINCH - 1))));
	long vmsize = status_value(buf, "\nVmSize:", 10), vmrss = status_value(buf, "\nVmRSS:", 10);
	/* Another thread's status shows its own mask, not ours. */
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/status", tids[1]);
	len = read_file(path, buf, sizeof buf - 1);
	buf[len > 0 ? len : 0] = 0;
	blk = status_value(buf, "\nSigBlk:", 16);
	printf("other thread's SigBlk lacks SIGWINCH: %s\n", yes(blk >= 0 && !(blk & (1L << (SIGWINCH - 1)))));

	len = read_file("/proc/self/statm", buf, sizeof buf - 1);
	buf[len > 0 ? len : 0] = 0;
	long size = -1, resident = -1;
	sscanf(buf, "%ld %ld", &size, &resident);
	printf("statm size is VmSize: %s, resident is VmRSS: %s\n", yes(size * 4 == vmsize),
	       yes(resident > 0 && labs(resident * 4 - vmrss) < 1024));

	len = read_file("/proc/self/stat", buf, sizeof buf - 1);
	buf[len > 0 ? len : 0] = 0;
	char *f = strrchr(buf, ')');
	CHECK(f != NULL);
	unsigned long v[53] = { 0 };
	char *save = NULL;
	int n = 3;
	for (char *t = strtok_r(f + 2, " ", &save); t && n < 53; t = strtok_r(NULL, " ", &save))
		v[n++] = strtoul(t, NULL, 10);
	printf("stat pid is ours: %s, threads: %lu\n", yes(atoi(buf) == getpid()), v[20]);
	uintptr_t arg0 = (uintptr_t)environ[-2], env0 = (uintptr_t)environ[0];
	printf("stat arg area holds argv: %s, env area holds environ: %s\n", yes(arg0 >= v[48] && arg0 < v[49]),
	       yes(env0 >= v[50] && env0 < v[51]));
	printf("stat code holds main: %s, brk start is below the break: %s\n",
	       yes((uintptr_t)mode_status >= v[26] && (uintptr_t)mode_status < v[27]),
	       yes(v[47] > 0 && v[47] <= (uintptr_t)sbrk(0)));
	printf("stat sigignore has SIGUSR1: %s\n", yes(v[33] & (1UL << (SIGUSR1 - 1))));
	printf("stat vsize is VmSize: %s\n", yes(v[23] / 1024 == (unsigned long)vmsize));
	signal(SIGUSR1, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	stop_threads();
}

static void mode_self(int argc, char **argv)
{
	static char buf[1 << 16];
	char exe[PATH_MAX], real[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	CHECK(n > 0);
	exe[n] = 0;
	CHECK(realpath(argv[0], real) != NULL);
	printf("exe link is the program: %s\n", yes(strcmp(exe, real) == 0));
	struct stat a, b;
	CHECK(stat(argv[0], &a) == 0);
	printf("stat exe is the program: %s\n", yes(stat("/proc/self/exe", &b) == 0 && a.st_ino == b.st_ino));
	int len = read_file("/proc/self/exe", buf, 4);
	printf("exe opens the program: %s\n", yes(len == 4 && memcmp(buf, "\177ELF", 4) == 0));
	printf("exe size: %s\n", yes(open("/proc/self/exe", O_RDONLY) >= 0));

	len = read_file("/proc/self/cmdline", buf, sizeof buf);
	int off = 0, same = len > 0;
	for (int i = 0; i < argc && same; i++) {
		same = strcmp(buf + off, argv[i]) == 0;
		off += strlen(argv[i]) + 1;
	}
	printf("cmdline is argv: %s\n", yes(same && off == len));

	len = read_file("/proc/self/environ", buf, sizeof buf);
	off = 0;
	same = len >= 0;
	for (char **e = environ; *e && same; e++) {
		same = strcmp(buf + off, *e) == 0;
		off += strlen(*e) + 1;
	}
	printf("environ is the environment: %s\n", yes(same && off == len));

	len = read_file("/proc/self/auxv", buf, sizeof buf);
	int pairs = 0, match = len > 0 && len % 16 == 0;
	for (int i = 0; i + 16 <= len; i += 16) {
		unsigned long k, v;
		memcpy(&k, buf + i, 8);
		memcpy(&v, buf + i + 8, 8);
		if (k == AT_NULL)
			break;
		pairs++;
		if (getauxval(k) != v)
			match = 0;
	}
	printf("auxv is the payload's: %s (%s pairs)\n", yes(match), yes(pairs > 10));

	len = read_file("/proc/self/limits", buf, sizeof buf - 1);
	CHECK(len > 0);
	buf[len] = 0;
	struct rlimit r;
	CHECK(getrlimit(RLIMIT_NOFILE, &r) == 0);
	printf("limits header: %s\n", yes(strncmp(buf, "Limit                     Soft Limit", 36) == 0));
	printf("limits nofile is getrlimit's: %s\n",
	       yes(limit_line(buf, "Max open files", 0) == r.rlim_cur &&
		   limit_line(buf, "Max open files", 1) == r.rlim_max));
	r.rlim_cur = 77;
	CHECK(setrlimit(RLIMIT_NOFILE, &r) == 0);
	len = read_file("/proc/self/limits", buf, sizeof buf - 1);
	buf[len] = 0;
	printf("limits follows setrlimit: %s\n", yes(limit_line(buf, "Max open files", 0) == 77));
	CHECK(getrlimit(RLIMIT_STACK, &r) == 0);
	printf("limits stack is getrlimit's: %s\n", yes(limit_line(buf, "Max stack size", 0) == r.rlim_cur));

	char cwd[PATH_MAX], link[PATH_MAX];
	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	n = readlink("/proc/self/cwd", link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	printf("cwd link is the cwd: %s\n", yes(strcmp(link, cwd) == 0));
	n = readlink("/proc/self/root", link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	printf("root link: %s\n", link);
	struct stat root, viaproc;
	CHECK(stat("/", &root) == 0);
	printf("root link leads to /: %s\n", yes(stat("/proc/self/root", &viaproc) == 0 && viaproc.st_ino == root.st_ino));
	CHECK(stat(".", &root) == 0);
	printf("cwd link leads to .: %s\n", yes(stat("/proc/self/cwd", &viaproc) == 0 && viaproc.st_ino == root.st_ino));
	mode_status();
	len = read_file("/proc/self/comm", buf, sizeof buf - 1);
	buf[len > 0 ? len : 0] = 0;
	printf("comm: %s", buf);
}

static void mode_paths(void)
{
	struct stat st;
	pid_t pid = getpid();
	SHOW("stat mem", stat("/proc/self/mem", &st));
	printf("mem mode: %o\n", st.st_mode & 07777);
	SHOW("lstat exe", lstat("/proc/self/exe", &st));
	printf("exe is a link: %s\n", yes(S_ISLNK(st.st_mode)));
	SHOW("stat fd dir", stat("/proc/self/fd", &st));
	printf("fd is a dir: %s\n", yes(S_ISDIR(st.st_mode)));
	/* Linux counts the open fds as the directory's size. */
	int count = 0;
	for (int n = 0; n < 1000; n++)
		count += fcntl(n, F_GETFD) >= 0;
	printf("fd dir size is the fd count: %s\n", yes(st.st_size == count));
	SHOW("access mem", access("/proc/self/mem", R_OK | W_OK));
	SHOW("access task dotdot", access("/proc/self/task/../maps", R_OK));
	SHOW("faccessat", faccessat(AT_FDCWD, "/proc/thread-self/maps", R_OK, 0));
	SHOW("stat missing", stat("/proc/self/no-such-entry", &st));
	SHOW("stat fd of missing fd", stat("/proc/self/fd/999", &st));
	SHOW("stat below a file", stat("/proc/self/maps/x", &st));
	SHOW("open dir for writing", open("/proc/self/fd", O_WRONLY));
	SHOW("creat exclusive on maps", open("/proc/self/maps", O_CREAT | O_EXCL | O_RDONLY, 0600));
	SHOW("open maps O_DIRECTORY", open("/proc/self/maps", O_RDONLY | O_DIRECTORY));
	SHOW("unlink maps", unlink("/proc/self/maps"));
	char link[PATH_MAX];
	ssize_t n = readlink("/proc/self", link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	printf("readlink /proc/self is pid: %s\n", yes(atoi(link) == pid));
	n = readlink("/proc/thread-self", link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	char expect[64];
	snprintf(expect, sizeof expect, "%d/task/%d", pid, gettid_());
	printf("readlink /proc/thread-self: %s\n", yes(strcmp(link, expect) == 0));
	int mem = open("/proc/self/mem", O_RDONLY);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", mem);
	n = readlink(path, link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	snprintf(expect, sizeof expect, "/proc/%d/mem", pid);
	printf("fd link names mem: %s\n", yes(strcmp(link, expect) == 0));
	SHOW("readlink of a file", readlink("/proc/self/maps", link, sizeof link));
	/* Reopening mem through its fd link gives mem again. */
	int again = open(path, O_RDONLY);
	char c = 0;
	printf("mem through fd link: %s\n", yes(again >= 0 && pread(again, &c, 1, (off_t)(uintptr_t)marker) == 1 &&
						 c == marker[0]));

	DIR *d = opendir("/proc/self");
	CHECK(d != NULL);
	int seen = 0, entries = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		entries++;
		seen += strcmp(e->d_name, "mem") == 0 || strcmp(e->d_name, "maps") == 0 ||
			strcmp(e->d_name, "fd") == 0 || strcmp(e->d_name, "task") == 0 || strcmp(e->d_name, "exe") == 0;
	}
	rewinddir(d);
	int again_entries = 0;
	while (readdir(d))
		again_entries++;
	closedir(d);
	printf("listing has mem maps fd task exe: %s, rewinds: %s\n", yes(seen == 5), yes(again_entries == entries));

	CHECK(chdir("/proc/self") == 0);
	char cwd[PATH_MAX];
	snprintf(expect, sizeof expect, "/proc/%d", pid);
	printf("getcwd in /proc/self: %s\n", yes(getcwd(cwd, sizeof cwd) && strcmp(cwd, expect) == 0));
	SHOW("stat relative maps", stat("maps", &st));
	SHOW("open relative task", open("task", O_RDONLY | O_DIRECTORY) >= 0);
	CHECK(chdir("fd") == 0);
	SHOW("stat relative ../mem", stat("../mem", &st));
	CHECK(chdir(dir) == 0);
	printf("getcwd back: %s\n", yes(getcwd(cwd, sizeof cwd) && strcmp(cwd, dir) == 0));

	/* A file of its own, reached through its fd link, can be changed. */
	int f = open("own", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	snprintf(path, sizeof path, "/proc/self/fd/%d", f);
	SHOW("truncate through fd link", truncate(path, 10));
	SHOW("chmod through fd link", chmod(path, 0640));
	CHECK(fstat(f, &st) == 0);
	printf("own file: size %ld mode %o\n", (long)st.st_size, st.st_mode & 0777);
	SHOW("chmod maps", chmod("/proc/self/maps", 0777));
}

struct how {
	uint64_t flags, mode, resolve;
};

static long at2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct how h = { flags, 0, resolve };
	long fd = syscall(SYS_openat2, dirfd, path, &h, sizeof h);
	if (fd >= 0)
		close((int)fd);
	return fd < 0 ? fd : 0;
}

static void mode_openat2(void)
{
	int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(d >= 0);
	CHECK(mkdir("sub", 0700) == 0);
	CHECK(close(open("sub/file", O_CREAT | O_WRONLY, 0600)) == 0);
	CHECK(close(open("file", O_CREAT | O_WRONLY, 0600)) == 0);
	CHECK(symlink("/proc/self/mem", "mem-link") == 0);
	CHECK(symlink("../file", "sub/up") == 0);
	SHOW("plain mem", at2(AT_FDCWD, "/proc/self/mem", O_RDONLY, 0));
	SHOW("NO_MAGICLINKS self mem", at2(AT_FDCWD, "/proc/self/mem", O_RDONLY, 2));
	SHOW("NO_MAGICLINKS fd 0", at2(AT_FDCWD, "/proc/self/fd/0", O_RDONLY, 2));
	SHOW("NO_MAGICLINKS exe", at2(AT_FDCWD, "/proc/self/exe", O_RDONLY, 2));
	SHOW("NO_MAGICLINKS O_PATH|O_NOFOLLOW exe", at2(AT_FDCWD, "/proc/self/exe", O_PATH | O_NOFOLLOW, 2));
	SHOW("NO_SYMLINKS self mem", at2(AT_FDCWD, "/proc/self/mem", O_RDONLY, 4));
	SHOW("NO_SYMLINKS pid mem", at2(AT_FDCWD, "/proc/1/comm", O_RDONLY, 4));
	SHOW("NO_SYMLINKS link", at2(d, "mem-link", O_RDONLY, 4));
	SHOW("BENEATH file", at2(d, "sub/file", O_RDONLY, 8));
	SHOW("BENEATH dotdot", at2(d, "../x", O_RDONLY, 8));
	SHOW("BENEATH inner dotdot", at2(d, "sub/../file", O_RDONLY, 8));
	SHOW("BENEATH absolute", at2(d, "/etc/passwd", O_RDONLY, 8));
	SHOW("BENEATH link up", at2(d, "sub/up", O_RDONLY, 8));
	SHOW("BENEATH magic link", at2(d, "mem-link", O_RDONLY, 8));
	SHOW("IN_ROOT absolute", at2(d, "/file", O_RDONLY, 0x10));
	SHOW("IN_ROOT dotdot", at2(d, "../../../file", O_RDONLY, 0x10));
	SHOW("IN_ROOT mem link", at2(d, "mem-link", O_RDONLY, 0x10));
	SHOW("NO_XDEV into proc", at2(AT_FDCWD, "/proc/self/mem", O_RDONLY, 1));
	SHOW("NO_XDEV in dir", at2(d, "sub/file", O_RDONLY, 1));
	int proc = open("/proc", O_PATH | O_CLOEXEC);
	SHOW("NO_XDEV within proc", at2(proc, "self/maps", O_RDONLY, 1));
	SHOW("NO_XDEV proc exe link", at2(proc, "self/exe", O_RDONLY, 1));
	SHOW("NO_XDEV proc root link", at2(proc, "self/root", O_RDONLY | O_DIRECTORY, 1));
	SHOW("BENEATH and IN_ROOT", at2(d, "file", O_RDONLY, 0x18));
	SHOW("unknown resolve bit", at2(d, "file", O_RDONLY, 0x40));
	SHOW("unknown flag", at2(d, "file", 1ull << 40, 0));
	SHOW("mode without O_CREAT", syscall(SYS_openat2, d, "file", &(struct how){ O_RDONLY, 0600, 0 }, 24));
	SHOW("size too small", syscall(SYS_openat2, d, "file", &(struct how){ O_RDONLY, 0, 0 }, 16));
	uint64_t bigger[5] = { O_RDONLY, 0, 0, 0, 1 };
	SHOW("nonzero tail", syscall(SYS_openat2, d, "file", bigger, sizeof bigger));
	bigger[4] = 0;
	SHOW("zero tail", syscall(SYS_openat2, d, "file", bigger, sizeof bigger) >= 0);
	SHOW("create", syscall(SYS_openat2, d, "new", &(struct how){ O_CREAT | O_WRONLY, 0600, 8 }, 24) >= 0);
	SHOW("created", access("new", F_OK));
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: hostile-proc MODE DIR [PROBE_HEX]\n");
		return 2;
	}
	dir = argv[2];
	CHECK(chdir(dir) == 0);
	if (argc > 3)
		probe = strtoull(argv[3], NULL, 16);
	if (MODE("mem"))
		mode_mem();
	else if (MODE("scan"))
		mode_scan();
	else if (MODE("maps"))
		mode_maps();
	else if (MODE("fds"))
		mode_fds();
	else if (MODE("tasks"))
		mode_tasks();
	else if (MODE("self"))
		mode_self(argc, argv);
	else if (MODE("paths"))
		mode_paths();
	else if (MODE("openat2"))
		mode_openat2();
	else {
		fprintf(stderr, "unknown mode %s\n", argv[1]);
		return 2;
	}
	printf("done\n");
	return 0;
}
