/* mmap-fail: a MAP_FIXED mmap that fails leaves the old mapping intact.
 * Over an anonymous read-write mapping holding a canary, and over a
 * read-only file mapping, MAP_FIXED with a bad fd (EBADF), with
 * PROT_WRITE|MAP_SHARED on an O_RDONLY fd (EACCES), and with a directory
 * fd (ENODEV) must fail and leave the old pages, contents and protection
 * as they were. Run in a scratch directory. */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096

static sigjmp_buf on_segv;

static void segv(int sig)
{
	(void)sig;
	siglongjmp(on_segv, 1);
}

/* Whether a write to `p` faults (the page kept its read-only protection). */
static int write_faults(volatile char *p)
{
	if (sigsetjmp(on_segv, 1))
		return 1;
	*p = 1;
	return 0;
}

static void try_fixed(const char *what, char *at, int prot, int flags, int fd)
{
	errno = 0;
	void *r = mmap(at, 2 * PAGE, prot, flags | MAP_FIXED, fd, 0);
	printf("%s: %s\n", what, r == MAP_FAILED ? errno_name(errno) : "mapped");
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGSEGV, segv);
	int ro = open("data", O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(ro >= 0);
	char buf[2 * PAGE];
	memset(buf, 'f', sizeof buf);
	CHECK(write(ro, buf, sizeof buf) == (long)sizeof buf);
	close(ro);
	ro = open("data", O_RDONLY);
	CHECK(ro >= 0);
	int dir = open(".", O_RDONLY | O_DIRECTORY);
	CHECK(dir >= 0);

	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	strcpy(p, "canary one");
	strcpy(p + PAGE, "canary two");
	try_fixed("anon, bad fd", p, PROT_READ, MAP_PRIVATE, 999);
	try_fixed("anon, shared writable on O_RDONLY", p, PROT_READ | PROT_WRITE, MAP_SHARED, ro);
	try_fixed("anon, directory fd", p, PROT_READ, MAP_PRIVATE, dir);
	printf("anon contents: %s, %s\n", p, p + PAGE);
	strcpy(p + PAGE, "still writable");
	printf("anon after write: %s\n", p + PAGE);

	char *f = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, ro, 0);
	CHECK(f != MAP_FAILED);
	try_fixed("file, bad fd", f, PROT_READ | PROT_WRITE, MAP_PRIVATE, -5);
	try_fixed("file, shared writable on O_RDONLY", f, PROT_READ | PROT_WRITE, MAP_SHARED, ro);
	printf("file contents: %c%c, write faults: %s\n", f[0], f[PAGE], yes(write_faults(f)));

	CHECK(munmap(p, 2 * PAGE) == 0 && munmap(f, 2 * PAGE) == 0);
	return 0;
}
