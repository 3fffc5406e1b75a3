/* The rest of Linux I/O and scheduling calls, run in the scratch
 * directory: splice, tee, vmsplice, copy_file_range, memfd with seals,
 * inotify, mknod (a FIFO), close_range, sched_* and friends, and wild
 * pointers for each. Prints only what is the same natively and under km.
 *
 *   moreio          everything that must match native
 *   moreio xattr    extended attributes on a tmpfs file
 *   moreio uring    io_uring, fanotify and open_by_handle_at (km: ENOSYS, by
 *                   design) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common.h"

static const char *err(long r)
{
	return r < 0 ? errno_name(errno) : "ok";
}

static void pipes(void)
{
	int p[2], q[2];
	CHECK(pipe(p) == 0 && pipe(q) == 0);
	int f = open("data", O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(f >= 0);
	CHECK(write(f, "0123456789abcdef", 16) == 16);
	loff_t off = 4;
	ssize_t n = splice(f, &off, p[1], NULL, 6, 0);
	printf("splice file->pipe: %zd, offset now %lld\n", n, (long long)off);
	printf("tee pipe->pipe: %zd\n", tee(p[0], q[1], 100, 0));
	char buf[32] = { 0 };
	CHECK(read(q[0], buf, sizeof buf) == 6);
	printf("tee copy: %s\n", buf);
	memset(buf, 0, sizeof buf);
	CHECK(read(p[0], buf, sizeof buf) == 6);
	printf("spliced: %s\n", buf);
	struct iovec iov[2] = { { "vm", 2 }, { "splice", 6 } };
	printf("vmsplice: %zd\n", vmsplice(p[1], iov, 2, 0));
	memset(buf, 0, sizeof buf);
	CHECK(read(p[0], buf, sizeof buf) == 8);
	printf("vmspliced: %s\n", buf);
	int g = open("copy", O_RDWR | O_CREAT | O_TRUNC, 0600);
	loff_t in = 10, out = 0;
	printf("copy_file_range: %zd\n", copy_file_range(f, &in, g, &out, 6, 0));
	memset(buf, 0, sizeof buf);
	CHECK(pread(g, buf, sizeof buf, 0) == 6);
	printf("copied: %s\n", buf);
	printf("sync_file_range: %s\n", err(sync_file_range(g, 0, 0, SYNC_FILE_RANGE_WRITE)));
	void *wild = (void *)0x7fc0001000ul;
	printf("wild offsets: splice %s copy_file_range %s\n", err(splice(f, wild, p[1], NULL, 1, 0)),
	       err(copy_file_range(f, wild, g, NULL, 1, 0)));
	struct iovec bad = { wild, 4 };
	printf("wild vmsplice: %s, wild iov array: %s\n", err(vmsplice(p[1], &bad, 1, 0)),
	       err(syscall(SYS_vmsplice, p[1], wild, 1, 0)));
	close(f);
	close(g);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

static void memfd(void)
{
	int m = memfd_create("km-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(m >= 0);
	CHECK(write(m, "sealed", 6) == 6);
	CHECK(fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0);
	printf("memfd seals: %#x, write after F_SEAL_WRITE: %s\n", fcntl(m, F_GET_SEALS),
	       err(write(m, "x", 1)));
	char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, m, 0);
	CHECK(p != MAP_FAILED);
	printf("memfd mapped: %.6s\n", p);
	munmap(p, 4096);
	printf("memfd_create wild name: %s\n", err(syscall(SYS_memfd_create, (void *)16, 0)));
	close(m);
}

static void notify(void)
{
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	CHECK(in >= 0);
	int wd = inotify_add_watch(in, ".", IN_CREATE | IN_DELETE);
	CHECK(wd >= 0);
	close(open("watched", O_CREAT | O_WRONLY, 0600));
	unlink("watched");
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n = read(in, buf, sizeof buf);
	CHECK(n > 0);
	for (char *q = buf; q < buf + n;) {
		struct inotify_event *e = (struct inotify_event *)q;
		printf("inotify: %s %s\n", e->mask & IN_CREATE ? "create" : e->mask & IN_DELETE ? "delete" : "other",
		       e->len ? e->name : "");
		q += sizeof *e + e->len;
	}
	printf("inotify_rm_watch: %s\n", err(inotify_rm_watch(in, wd)));
	close(in);
}

static void nodes(void)
{
	printf("mknod fifo: %s\n", err(mknod("fifo", S_IFIFO | 0600, 0)));
	struct stat st;
	CHECK(stat("fifo", &st) == 0);
	printf("is a fifo: %s\n", yes(S_ISFIFO(st.st_mode)));
	printf("mknodat again: %s\n", err(mknodat(AT_FDCWD, "fifo", S_IFIFO | 0600, 0)));
	unlink("fifo");
}

static void scheduling(void)
{
	struct sched_param sp = { 0 };
	/* musl answers these itself (ENOSYS), so they are made directly. */
	printf("sched_getscheduler: %ld\n", syscall(SYS_sched_getscheduler, 0));
	long r = syscall(SYS_sched_getparam, 0, &sp);
	printf("sched_getparam: %s prio %d\n", err(r), sp.sched_priority);
	printf("sched_setscheduler OTHER: %s\n", err(syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, &sp)));
	printf("sched_setparam: %s\n", err(syscall(SYS_sched_setparam, 0, &sp)));
	printf("priority range FIFO: %d..%d\n", sched_get_priority_min(SCHED_FIFO), sched_get_priority_max(SCHED_FIFO));
	struct timespec ts;
	printf("sched_rr_get_interval: %s\n", err(sched_rr_get_interval(0, &ts)));
	cpu_set_t set;
	CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
	printf("sched_setaffinity to the same set: %s\n", err(sched_setaffinity(0, sizeof set, &set)));
	unsigned cpu = 99;
	r = syscall(SYS_getcpu, &cpu, NULL, NULL);
	printf("getcpu: %s, in the set: %s\n", err(r), yes(CPU_ISSET(cpu, &set)));
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0);
	printf("setpriority to the same: %s\n", err(setpriority(PRIO_PROCESS, 0, nice)));
	printf("personality query: %#x\n", personality(0xffffffff));
	void *wild = (void *)0x7fc0001000ul;
	printf("wild: getparam %s setaffinity %s getcpu %s rr %s\n", err(syscall(SYS_sched_getparam, 0, wild)),
	       err(syscall(SYS_sched_setaffinity, 0, 128, wild)), err(syscall(SYS_getcpu, wild, NULL, NULL)),
	       err(syscall(SYS_sched_rr_get_interval, 0, wild)));
}

/* After close_range over everything above stderr, the payload still
 * writes, and km (whose own fds are not the payload's to close) still
 * serves it. */
static void closing(void)
{
	int a = open(".", O_RDONLY), b = dup(a);
	CHECK(a >= 0 && b >= 0);
	printf("close_range(3, ~0): %s\n", err(syscall(SYS_close_range, 3, ~0u, 0)));
	printf("closed: %s %s\n", err(fcntl(a, F_GETFD)), err(fcntl(b, F_GETFD)));
	printf("close_range first > last: %s\n", err(syscall(SYS_close_range, 5, 4, 0)));
	int c = open(".", O_RDONLY);
	printf("next fd: %d\n", c);
}

/* Extended attributes on a tmpfs file (/dev/shm) and a symlink to it,
 * with wild pointers for each call that takes one. */
static void xattrs(void)
{
	char path[64], link[64];
	snprintf(path, sizeof path, "/dev/shm/km-xattr-%d", getpid());
	snprintf(link, sizeof link, "/dev/shm/km-xattr-link-%d", getpid());
	int f = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(f >= 0);
	CHECK(symlink(path, link) == 0);
	printf("setxattr: %s\n", err(setxattr(path, "user.km", "value", 5, 0)));
	printf("setxattr XATTR_CREATE again: %s\n", err(setxattr(path, "user.km", "v", 1, XATTR_CREATE)));
	char buf[64] = { 0 };
	long n = getxattr(path, "user.km", buf, sizeof buf);
	printf("getxattr: %ld %s\n", n, n > 0 ? buf : errno_name(errno));
	printf("getxattr size query: %ld\n", getxattr(path, "user.km", NULL, 0));
	printf("getxattr too small: %s\n", err(getxattr(path, "user.km", buf, 2)));
	memset(buf, 0, sizeof buf);
	n = fgetxattr(f, "user.km", buf, sizeof buf);
	printf("fgetxattr: %ld %s\n", n, n > 0 ? buf : errno_name(errno));
	printf("fsetxattr: %s\n", err(fsetxattr(f, "user.two", "2", 1, 0)));
	memset(buf, 0, sizeof buf);
	n = listxattr(path, buf, sizeof buf);
	printf("listxattr: %ld bytes, has user.km and user.two: %s\n", n,
	       yes(n > 0 && memmem(buf, n, "user.km", 8) && memmem(buf, n, "user.two", 9)));
	printf("lgetxattr on the link (links have no user xattrs): %s\n", err(lgetxattr(link, "user.km", buf, sizeof buf)));
	printf("getxattr through the link: %ld\n", getxattr(link, "user.km", buf, sizeof buf));
	printf("removexattr: %s\n", err(removexattr(path, "user.km")));
	printf("removexattr again: %s\n", err(removexattr(path, "user.km")));
	printf("fremovexattr: %s\n", err(fremovexattr(f, "user.two")));
	void *wild = (void *)0x7fc0001000ul;
	printf("wild: path %s name %s value %s list %s\n", err(getxattr(wild, "user.km", buf, 8)),
	       err(getxattr(path, wild, buf, 8)), err(setxattr(path, "user.w", wild, 8, 0)),
	       err(listxattr(path, wild, 64)));
	printf("wild value of an absent attribute: %s\n", err(getxattr(path, "user.none", wild, 8)));
	CHECK(setxattr(path, "user.back", "1", 1, 0) == 0);
	printf("wild list with an attribute: %s\n", err(listxattr(path, wild, 64)));
	close(f);
	unlink(link);
	unlink(path);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 1 && !strcmp(argv[1], "xattr")) {
		xattrs();
		printf("done\n");
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "uring")) {
		printf("io_uring_setup: %s\n", err(syscall(SYS_io_uring_setup, 8, calloc(1, 120))));
		printf("fanotify_init: %s\n", err(syscall(SYS_fanotify_init, 0, 0)));
		printf("open_by_handle_at: %s\n", err(syscall(SYS_open_by_handle_at, AT_FDCWD, calloc(1, 128), 0)));
		return 0;
	}
	pipes();
	memfd();
	notify();
	nodes();
	scheduling();
	closing();
	printf("done\n");
	return 0;
}
