/* syscalls MODE: system calls with bad arguments.
 *   efault  - pointer arguments that do not point at usable memory: each
 *             call must fail with EFAULT and change nothing
 *   enosys  - syscall numbers no kernel implements
 *   unimpl  - create_module (174) twice: ENOSYS natively; km must return
 *             ENOSYS too and warn once on stderr
 * Raw syscall() is used throughout so libc cannot check, copy or (vDSO)
 * short-circuit a pointer before the kernel or km sees it. */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

/* Far outside any guest memory km is likely to map, but inside the native
 * user address space. */
#define WILD ((void *)0xdead0000000UL)
/* Canonical, but the kernel half: never user memory. */
#define KERNEL_HALF ((void *)0xffff800000000000UL)

/* A high user address that is unmapped in this process natively (near, but
 * normally not inside, the stack). Checked with msync, which reports ENOMEM
 * for unmapped ranges, so the payload never depends on ASLR luck. */
static void *unmapped_high(void)
{
	for (uintptr_t a = 0x7fff00000000UL; a > 0x7f0000000000UL; a -= 0x100000000UL)
		if (msync((void *)a, PAGE, MS_ASYNC) == -1 && errno == ENOMEM)
			return (void *)a;
	CHECK(!"no unmapped high address");
	return NULL;
}

static void efault(void)
{
	/* Non-blocking, so a read of an empty pipe reports EAGAIN, not hang. */
	int p[2];
	CHECK(pipe2(p, O_NONBLOCK) == 0);
	CHECK(write(p[1], "0123456789", 10) == 10);

	/* Pages whose protection forbids the access the kernel would make, and
	 * guest memory that was mapped and is not any more (unmapped last, so
	 * no later mmap can reuse the hole). */
	char *ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *gone = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro != MAP_FAILED && none != MAP_FAILED && gone != MAP_FAILED);
	CHECK(munmap(gone, PAGE) == 0);
	void *high = unmapped_high();

	SHOW("write(1, 0x1, 10)", syscall(SYS_write, 1, (void *)1, 10));
	SHOW("write(1, NULL, 10)", syscall(SYS_write, 1, NULL, 10));
	SHOW("write(pipe, wild, 10)", syscall(SYS_write, p[1], WILD, 10));
	SHOW("write(pipe, kernel half, 10)", syscall(SYS_write, p[1], KERNEL_HALF, 10));
	SHOW("write(pipe, unmapped high, 10)", syscall(SYS_write, p[1], high, 10));
	SHOW("write(pipe, munmapped, 10)", syscall(SYS_write, p[1], gone, 10));
	SHOW("write(pipe, PROT_NONE, 10)", syscall(SYS_write, p[1], none, 10));
	SHOW("read(pipe, wild, 10)", syscall(SYS_read, p[0], WILD, 10));
	SHOW("read(pipe, kernel half, 10)", syscall(SYS_read, p[0], KERNEL_HALF, 10));
	SHOW("read(pipe, unmapped high, 10)", syscall(SYS_read, p[0], high, 10));
	SHOW("read(pipe, munmapped, 10)", syscall(SYS_read, p[0], gone, 10));
	SHOW("read(pipe, PROT_READ page, 10)", syscall(SYS_read, p[0], ro, 10));
	/* Zero-length transfers never touch the buffer, so they succeed. */
	SHOW("write(1, wild, 0)", syscall(SYS_write, 1, WILD, 0));

	/* Every failed read above must have left the pipe's data in place. */
	char buf[16] = {0};
	SHOW("read(pipe, good, 16)", syscall(SYS_read, p[0], buf, 16));
	printf("pipe data intact: %s\n", buf);

	struct iovec wild_base[2] = {{"ok", 2}, {WILD, 4}};
	struct iovec first_wild[1] = {{WILD, 4}};
	SHOW("writev(pipe, iov[0].base wild)", syscall(SYS_writev, p[1], first_wild, 1));
	SHOW("writev(pipe, iov wild)", syscall(SYS_writev, p[1], WILD, 1));
	SHOW("writev(pipe, iov kernel half)", syscall(SYS_writev, p[1], KERNEL_HALF, 1));
	SHOW("readv(pipe, iov wild)", syscall(SYS_readv, p[0], WILD, 1));
	/* A wild second element fails the whole pipe write, atomically. */
	SHOW("writev(pipe, iov[1].base wild)", syscall(SYS_writev, p[1], wild_base, 2));
	SHOW("pipe still empty", syscall(SYS_read, p[0], buf, sizeof buf));

	char st[256];
	SHOW("stat(wild path)", syscall(SYS_stat, WILD, st));
	SHOW("stat(kernel-half path)", syscall(SYS_stat, KERNEL_HALF, st));
	SHOW("stat(\".\", wild buf)", syscall(SYS_stat, ".", WILD));
	SHOW("stat(\".\", PROT_READ buf)", syscall(SYS_stat, ".", ro));
	SHOW("open(wild path)", syscall(SYS_open, WILD, O_RDONLY));
	SHOW("open(munmapped path)", syscall(SYS_open, gone, O_RDONLY));
	SHOW("open(NULL)", syscall(SYS_open, NULL, O_RDONLY));
	SHOW("clock_gettime(wild)", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, WILD));
	SHOW("uname(wild)", syscall(SYS_uname, WILD));
	SHOW("getcwd(wild, 100)", syscall(SYS_getcwd, WILD, 100));
	SHOW("pipe(wild)", syscall(SYS_pipe, WILD));
	SHOW("pipe(PROT_READ page)", syscall(SYS_pipe, ro));

	/* A failed pipe() must not leak descriptors: the next one is 5. */
	int fd = open(".", O_RDONLY);
	printf("next fd: %d\n", fd);
	CHECK(close(fd) == 0 && close(p[0]) == 0 && close(p[1]) == 0);
}

static void enosys(void)
{
	SHOW("syscall(400)", syscall(400));
	SHOW("syscall(1000)", syscall(1000));
	SHOW("syscall(-1)", syscall(-1L));
	SHOW("syscall(0x7fffffff)", syscall(0x7fffffffL));
	/* The kernel reads the number from eax: the upper half is ignored. */
	printf("getpid with rax's upper half set is getpid: %s\n", syscall(0x100000000L | SYS_getpid) == getpid() ? "yes" : "no");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (MODE("efault")) {
		efault();
	} else if (MODE("enosys")) {
		enosys();
	} else if (MODE("unimpl")) {
		SHOW("create_module", syscall(174, 0, 0));
		SHOW("create_module again", syscall(174, 0, 0));
	} else {
		fprintf(stderr, "usage: syscalls efault|enosys|unimpl\n");
		return 2;
	}
	printf("done\n");
	return 0;
}
