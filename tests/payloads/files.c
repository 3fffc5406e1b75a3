/* files roundtrip DIR | files getdents DIR
 *
 * File-system system calls inside DIR, a fresh empty directory. Prints
 * results (sizes, modes, contents, errno names, fd numbers) but never inode
 * numbers, times set by the system or DIR's absolute path, so native and km
 * runs print the same. */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* musl 1.2.3 has no statx wrapper or struct; this is the kernel's layout
 * (include/uapi/linux/stat.h), with the tail we do not read as padding. */
struct kstatx {
	uint32_t mask, blksize;
	uint64_t attributes;
	uint32_t nlink, uid, gid;
	uint16_t mode, spare0;
	uint64_t ino, size, blocks, attributes_mask;
	struct {
		int64_t sec;
		uint32_t nsec;
		int32_t reserved;
	} atime, btime, ctime, mtime;
	uint8_t tail[256 - 0x80];
};
#define KSTATX_BASIC_STATS 0x7ffU

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(close(fd) == 0);
}

/* open, write, read, seek, positional I/O, sync, truncate. */
static void io_basics(void)
{
	char buf[64] = {0};

	printf("old umask: %03o\n", (unsigned)umask(027));
	int fd = open("a.txt", O_WRONLY | O_CREAT | O_EXCL, 0666);
	/* Lowest free descriptor: km's own descriptors must not be visible. */
	printf("first open fd: %d\n", fd);
	CHECK(fd >= 0);
	SHOW("open O_EXCL again", open("a.txt", O_WRONLY | O_CREAT | O_EXCL, 0666));
	SHOW("write", write(fd, "hello, world\n", 13));
	SHOW("fsync", fsync(fd));
	SHOW("fdatasync", fdatasync(fd));
	SHOW("read on O_WRONLY", read(fd, buf, 1));
	CHECK(close(fd) == 0);
	SHOW("close again", close(fd));

	fd = open("a.txt", O_RDONLY);
	CHECK(fd >= 0);
	SHOW("read", read(fd, buf, sizeof buf - 1));
	printf("content: %s", buf);
	SHOW("read at EOF", read(fd, buf, sizeof buf));
	SHOW("lseek SET 7", lseek(fd, 7, SEEK_SET));
	memset(buf, 0, sizeof buf);
	SHOW("read 5", read(fd, buf, 5));
	printf("got: %s\n", buf);
	SHOW("lseek CUR -5", lseek(fd, -5, SEEK_CUR));
	SHOW("lseek END 0", lseek(fd, 0, SEEK_END));
	SHOW("lseek SET -1", lseek(fd, -1, SEEK_SET));
	SHOW("write on O_RDONLY", write(fd, "x", 1));
	CHECK(close(fd) == 0);

	fd = open("a.txt", O_RDWR);
	CHECK(fd >= 0);
	SHOW("pwrite 0", pwrite(fd, "HELLO", 5, 0));
	memset(buf, 0, sizeof buf);
	SHOW("pread 7", pread(fd, buf, 5, 7));
	printf("got: %s\n", buf);
	SHOW("offset after pread/pwrite", lseek(fd, 0, SEEK_CUR));

	struct iovec wv[3] = {{"one ", 4}, {"two ", 4}, {"three\n", 6}};
	SHOW("lseek END", lseek(fd, 0, SEEK_END));
	SHOW("writev", writev(fd, wv, 3));
	char r1[4] = {0}, r2[20] = {0};
	struct iovec rv[2] = {{r1, 3}, {r2, sizeof r2 - 1}};
	SHOW("preadv 13", preadv(fd, rv, 2, 13));
	r2[strcspn(r2, "\n")] = 0;
	printf("got: [%s][%s]\n", r1, r2);

	struct stat st;
	SHOW("ftruncate 5", ftruncate(fd, 5));
	CHECK(fstat(fd, &st) == 0);
	printf("size: %lld\n", (long long)st.st_size);
	SHOW("ftruncate 8192", ftruncate(fd, 8192));
	CHECK(fstat(fd, &st) == 0);
	printf("size: %lld\n", (long long)st.st_size);
	memset(buf, 'x', sizeof buf);
	SHOW("pread in extension", pread(fd, buf, 4, 4000));
	printf("zero-filled: %s\n", !buf[0] && !buf[1] && !buf[2] && !buf[3] ? "yes" : "no");
	CHECK(close(fd) == 0);
	SHOW("truncate 3", truncate("a.txt", 3));
	CHECK(stat("a.txt", &st) == 0);
	printf("size: %lld\n", (long long)st.st_size);
	SHOW("truncate missing", truncate("missing", 0));
}

/* The four stat flavours and statx must agree with each other. */
static void stat_family(void)
{
	struct stat s_stat, s_lstat, s_fstat, s_at;
	struct kstatx sx;

	write_file("s.txt", "0123456789");
	int fd = open("s.txt", O_RDONLY);
	CHECK(fd >= 0);
	SHOW("SYS_stat", syscall(SYS_stat, "s.txt", &s_stat));
	SHOW("SYS_lstat", syscall(SYS_lstat, "s.txt", &s_lstat));
	SHOW("SYS_fstat", syscall(SYS_fstat, fd, &s_fstat));
	SHOW("SYS_newfstatat", syscall(SYS_newfstatat, AT_FDCWD, "s.txt", &s_at, AT_SYMLINK_NOFOLLOW));
	SHOW("SYS_statx", syscall(SYS_statx, AT_FDCWD, "s.txt", 0, KSTATX_BASIC_STATS, &sx));
	printf("mode %o size %lld nlink %lu\n", (unsigned)s_stat.st_mode,
	       (long long)s_stat.st_size, (unsigned long)s_stat.st_nlink);
	printf("statx mask has basic stats: %s\n",
	       (sx.mask & KSTATX_BASIC_STATS) == KSTATX_BASIC_STATS ? "yes" : "no");
	printf("statx mode %o size %llu nlink %u\n", sx.mode,
	       (unsigned long long)sx.size, sx.nlink);
	int same = s_stat.st_ino == s_lstat.st_ino && s_stat.st_ino == s_fstat.st_ino &&
		   s_stat.st_ino == s_at.st_ino && s_stat.st_ino == sx.ino &&
		   s_stat.st_size == s_fstat.st_size && s_stat.st_mode == s_at.st_mode &&
		   s_stat.st_mtim.tv_sec == sx.mtime.sec && s_stat.st_uid == sx.uid;
	printf("stat flavours agree: %s\n", same ? "yes" : "no");
	printf("uid matches getuid: %s\n", s_stat.st_uid == getuid() ? "yes" : "no");
	SHOW("stat missing", syscall(SYS_stat, "missing", &s_stat));
	SHOW("fstat bad fd", syscall(SYS_fstat, 999, &s_stat));
	SHOW("statx empty path", syscall(SYS_statx, fd, "", AT_EMPTY_PATH, KSTATX_BASIC_STATS, &sx));
	printf("statx via fd size %llu\n", (unsigned long long)sx.size);
	CHECK(close(fd) == 0);

	struct timespec ts[2] = {{1000000000, 5}, {1234567890, 600}};
	SHOW("utimensat", utimensat(AT_FDCWD, "s.txt", ts, 0));
	CHECK(stat("s.txt", &s_stat) == 0);
	printf("atime %lld.%ld mtime %lld.%ld\n", (long long)s_stat.st_atim.tv_sec,
	       s_stat.st_atim.tv_nsec, (long long)s_stat.st_mtim.tv_sec, s_stat.st_mtim.tv_nsec);
	struct timespec omit_atime[2] = {{0, UTIME_OMIT}, {42, 0}};
	SHOW("utimensat UTIME_OMIT", utimensat(AT_FDCWD, "s.txt", omit_atime, 0));
	CHECK(stat("s.txt", &s_stat) == 0);
	printf("atime %lld mtime %lld\n", (long long)s_stat.st_atim.tv_sec,
	       (long long)s_stat.st_mtim.tv_sec);

	struct statfs sf, fsf;
	SHOW("statfs", statfs(".", &sf));
	fd = open(".", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	SHOW("fstatfs", fstatfs(fd, &fsf));
	printf("statfs agree: %s, bsize>0: %s\n",
	       sf.f_type == fsf.f_type && sf.f_blocks == fsf.f_blocks ? "yes" : "no",
	       sf.f_bsize > 0 ? "yes" : "no");
	CHECK(close(fd) == 0);
}

/* rename, link, symlink, chmod, access, mkdir, rmdir, unlink. */
static void names(void)
{
	struct stat st;
	char buf[64] = {0};

	SHOW("rename", rename("a.txt", "b.txt"));
	SHOW("stat old name", stat("a.txt", &st));
	SHOW("link", link("b.txt", "c.txt"));
	CHECK(stat("b.txt", &st) == 0);
	printf("nlink after link: %lu\n", (unsigned long)st.st_nlink);
	SHOW("link onto existing", link("b.txt", "c.txt"));
	SHOW("unlink", unlink("c.txt"));
	CHECK(stat("b.txt", &st) == 0);
	printf("nlink after unlink: %lu\n", (unsigned long)st.st_nlink);

	SHOW("symlink", symlink("b.txt", "sym"));
	SHOW("readlink", readlink("sym", buf, sizeof buf));
	printf("target: %s\n", buf);
	SHOW("readlink short buffer", readlink("sym", buf, 2));
	SHOW("readlink on file", readlink("b.txt", buf, sizeof buf));
	CHECK(lstat("sym", &st) == 0);
	printf("lstat is link: %s\n", S_ISLNK(st.st_mode) ? "yes" : "no");
	CHECK(stat("sym", &st) == 0);
	printf("stat follows: %s\n", S_ISREG(st.st_mode) ? "yes" : "no");

	SHOW("chmod 0600", chmod("b.txt", 0600));
	CHECK(stat("b.txt", &st) == 0);
	printf("mode: %o\n", (unsigned)(st.st_mode & 07777));
	int fd = open("b.txt", O_RDONLY);
	CHECK(fd >= 0);
	SHOW("fchmod 0644", fchmod(fd, 0644));
	CHECK(fstat(fd, &st) == 0);
	printf("mode: %o\n", (unsigned)(st.st_mode & 07777));
	CHECK(close(fd) == 0);
	SHOW("access R_OK|W_OK", access("b.txt", R_OK | W_OK));
	SHOW("access missing", access("missing", F_OK));
	SHOW("faccessat", faccessat(AT_FDCWD, "sym", F_OK, 0));

	SHOW("mkdir", mkdir("d", 0777));
	CHECK(stat("d", &st) == 0);
	printf("dir mode under umask 027: %o\n", (unsigned)(st.st_mode & 07777));
	SHOW("mkdir again", mkdir("d", 0777));
	write_file("d/f", "x");
	SHOW("rmdir non-empty", rmdir("d"));
	SHOW("rmdir file", rmdir("b.txt"));
	SHOW("unlink dir", unlink("d"));
	SHOW("unlink d/f", unlink("d/f"));
	SHOW("rmdir", rmdir("d"));
	SHOW("open missing", open("missing", O_RDONLY));
	SHOW("open O_DIRECTORY on file", open("b.txt", O_RDONLY | O_DIRECTORY));
	SHOW("unlink sym", unlink("sym"));
	SHOW("unlink b.txt", unlink("b.txt"));
	SHOW("unlink s.txt", unlink("s.txt"));
}

/* getcwd/chdir/fchdir, checked against the directory the harness gave us
 * without printing its absolute path. */
static void cwd(const char *dir)
{
	char base[4096], here[4096];

	CHECK(getcwd(base, sizeof base) != NULL);
	SHOW("getcwd tiny buffer", getcwd(here, 2) ? 0 : -1);
	SHOW("mkdir sub", mkdir("sub", 0755));
	int top = open(".", O_RDONLY | O_DIRECTORY);
	CHECK(top >= 0);
	SHOW("chdir sub", chdir("sub"));
	CHECK(getcwd(here, sizeof here) != NULL);
	printf("cwd is base/sub: %s\n",
	       strncmp(here, base, strlen(base)) == 0 && strcmp(here + strlen(base), "/sub") == 0 ? "yes" : "no");
	SHOW("fchdir", fchdir(top));
	CHECK(getcwd(here, sizeof here) != NULL);
	printf("back at base: %s\n", strcmp(here, base) == 0 ? "yes" : "no");
	SHOW("chdir missing", chdir("missing"));
	SHOW("rmdir sub", rmdir("sub"));
	CHECK(close(top) == 0);
	SHOW("chdir by absolute path", chdir(dir));
}

/* Descriptor table: dup family, fcntl, pipes. */
static void descriptors(void)
{
	char buf[16] = {0};

	write_file("f.txt", "abcdefgh");
	int fd = open("f.txt", O_RDWR | O_APPEND);
	CHECK(fd >= 0);
	int d = dup(fd);
	printf("dup gives next fd: %s\n", d == fd + 1 ? "yes" : "no");
	SHOW("lseek via dup", lseek(d, 3, SEEK_SET));
	SHOW("offset shared", lseek(fd, 0, SEEK_CUR));
	SHOW("dup2 to 100", dup2(fd, 100));
	printf("dup2 same fd returns it: %s\n", dup2(fd, fd) == fd ? "yes" : "no");
	SHOW("dup3 to 101 O_CLOEXEC", dup3(fd, 101, O_CLOEXEC));
	SHOW("F_GETFD 101", fcntl(101, F_GETFD));
	SHOW("dup3 same fd", dup3(fd, fd, 0));
	SHOW("dup bad fd", dup(999));
	SHOW("F_DUPFD 50", fcntl(fd, F_DUPFD, 50));
	SHOW("F_DUPFD 50 again", fcntl(fd, F_DUPFD, 50));
	SHOW("F_DUPFD_CLOEXEC 60", fcntl(fd, F_DUPFD_CLOEXEC, 60));
	SHOW("F_GETFD 60", fcntl(60, F_GETFD));

	int fl = fcntl(fd, F_GETFL);
	printf("F_GETFL: accmode O_RDWR %s, O_APPEND %s, O_NONBLOCK %s\n",
	       (fl & O_ACCMODE) == O_RDWR ? "yes" : "no", fl & O_APPEND ? "yes" : "no",
	       fl & O_NONBLOCK ? "yes" : "no");
	SHOW("F_SETFL O_NONBLOCK", fcntl(fd, F_SETFL, fl | O_NONBLOCK));
	fl = fcntl(d, F_GETFL);
	printf("dup sees O_NONBLOCK: %s\n", fl & O_NONBLOCK ? "yes" : "no");
	SHOW("F_GETFD", fcntl(fd, F_GETFD));
	SHOW("F_SETFD FD_CLOEXEC", fcntl(fd, F_SETFD, FD_CLOEXEC));
	SHOW("F_GETFD", fcntl(fd, F_GETFD));
	SHOW("F_GETFD on dup", fcntl(d, F_GETFD));
	SHOW("fcntl bad fd", fcntl(999, F_GETFD));
	/* O_APPEND: the write lands at the end whatever the offset. */
	SHOW("append write", write(100, "XY", 2));
	SHOW("pread", pread(fd, buf, sizeof buf - 1, 0));
	printf("content: %s\n", buf);
	int to_close[] = {fd, d, 100, 101, 50, 51, 60};
	for (size_t i = 0; i < sizeof to_close / sizeof *to_close; i++)
		CHECK(close(to_close[i]) == 0);
	CHECK(unlink("f.txt") == 0);

	int p[2];
	SHOW("pipe", pipe(p));
	printf("pipe fds: %d %d\n", p[0], p[1]);
	SHOW("pipe write", write(p[1], "abc", 3));
	memset(buf, 0, sizeof buf);
	SHOW("pipe read", read(p[0], buf, sizeof buf));
	printf("got: %s\n", buf);
	SHOW("lseek on pipe", lseek(p[0], 0, SEEK_SET));
	CHECK(close(p[1]) == 0);
	SHOW("read after writer closed", read(p[0], buf, sizeof buf));
	CHECK(close(p[0]) == 0);

	SHOW("pipe2", pipe2(p, O_CLOEXEC | O_NONBLOCK));
	SHOW("F_GETFD pipe2", fcntl(p[0], F_GETFD));
	SHOW("read empty non-blocking", read(p[0], buf, sizeof buf));
	SHOW("pipe2 bad flags", pipe2(p, 0x12345678));
	CHECK(close(p[0]) == 0 && close(p[1]) == 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads directory fd with raw getdents64 through a small buffer (forcing
 * several calls) and prints "name type" sorted; returns the entry count. */
static int list_dir(int fd, int print)
{
	/* Larger than one struct dirent, far smaller than the listing. */
	char buf[512];
	char *names[128];
	int n = 0;

	for (;;) {
		long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
		CHECK(got >= 0);
		if (got == 0)
			break;
		for (long off = 0; off < got;) {
			struct dirent *de = (struct dirent *)(buf + off);
			CHECK(n < 128);
			names[n] = malloc(strlen(de->d_name) + 3);
			CHECK(names[n] != NULL);
			/* d_type is DT_UNKNOWN on some file systems; both runs use
			 * the same one, so printing it is still deterministic. */
			sprintf(names[n++], "%s %c", de->d_name,
				de->d_type == DT_DIR ? 'd' : de->d_type == DT_REG ? 'f' :
				de->d_type == DT_LNK ? 'l' : '?');
			off += de->d_reclen;
		}
	}
	qsort(names, n, sizeof *names, cmp_str);
	for (int i = 0; i < n; i++) {
		if (print)
			printf("  %s\n", names[i]);
		free(names[i]);
	}
	return n;
}

static void directory_listing(void)
{
	char name[16];

	CHECK(mkdir("g", 0755) == 0);
	CHECK(mkdir("g/subdir", 0755) == 0);
	CHECK(symlink("f00", "g/link") == 0);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "g/f%02d", i);
		write_file(name, "");
	}
	int fd = open("g", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	printf("entries:\n");
	printf("count: %d\n", list_dir(fd, 1));
	SHOW("getdents64 at end", syscall(SYS_getdents64, fd, name, sizeof name));
	SHOW("rewind", lseek(fd, 0, SEEK_SET));
	printf("count after rewind: %d\n", list_dir(fd, 0));
	char tiny[8];
	SHOW("rewind", lseek(fd, 0, SEEK_SET));
	SHOW("getdents64 buffer too small", syscall(SYS_getdents64, fd, tiny, sizeof tiny));
	CHECK(close(fd) == 0);

	fd = open("g/f00", O_RDONLY);
	CHECK(fd >= 0);
	SHOW("getdents64 on a file", syscall(SYS_getdents64, fd, name, sizeof name));
	CHECK(close(fd) == 0);
	SHOW("getdents64 bad fd", syscall(SYS_getdents64, 999, name, sizeof name));
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: files roundtrip|getdents DIR\n");
		return 2;
	}
	/* Unbuffered: under km a crash mid-way then shows how far it got. */
	setvbuf(stdout, NULL, _IONBF, 0);
	CHECK(chdir(argv[2]) == 0);
	if (MODE("roundtrip")) {
		io_basics();
		stat_family();
		names();
		cwd(argv[2]);
		descriptors();
	} else if (MODE("getdents")) {
		directory_listing();
	} else {
		fprintf(stderr, "unknown mode %s\n", argv[1]);
		return 2;
	}
	printf("done\n");
	return 0;
}
