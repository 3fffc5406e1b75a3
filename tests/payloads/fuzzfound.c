/* fuzzfound MODE: deterministic cases for what the syscall fuzzer (fuzz.c)
 * found in km, run natively and under km.
 *   timezone - gettimeofday's struct timezone straddling the end of the
 *              highest mapping the payload can have below 511 GiB, where
 *              km's monitor area begins: EFAULT, and the next call works
 *   path-edge - a path running off that mapping: EFAULT (km's host call
 *              read on into its monitor area: ENOENT), or ENAMETOOLONG
 *              when PATH_MAX bytes fit before the end
 *   exec-only - a PROT_EXEC-only page can be read and run, a PROT_WRITE-only
 *              one read (x86 cannot make a page executable or writable
 *              but not readable)
 *   shared-grown - a MAP_SHARED anonymous mapping grown by mremap: its
 *              new pages are past the end of its shmem object, so a touch
 *              is SIGBUS (BUS_ADRERR, at that address), caught
 *   mlock    - mlock/munlock lengths that overflow when the offset into
 *              the first page is added: Linux wraps them (to nothing, or
 *              to one page) or fails with EINVAL */
#define _GNU_SOURCE
#include "common.h"

#include <setjmp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static sigjmp_buf bus_jump;
static siginfo_t bus_info;

static void on_bus(int sig, siginfo_t *info, void *uc)
{
	(void)sig;
	(void)uc;
	bus_info = *info;
	siglongjmp(bus_jump, 1);
}

/* km's monitor area starts at 511 GiB; natively nothing is there. */
#define MONITOR (511UL << 30)

/* The highest page below MONITOR that can be mapped: the last one
 * natively, one lower under km, which keeps a guard page. Nothing is
 * mapped above it, up to MONITOR. */
static char *edge_page(void)
{
	for (unsigned long at = MONITOR - 4096; at >= MONITOR - 2 * 4096; at -= 4096) {
		char *page = mmap((void *)at, 4096, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (page == (void *)at)
			return page;
		CHECK(page == MAP_FAILED && errno == ENOMEM);
	}
	CHECK(!"a page below 511 GiB");
	return NULL;
}

int main(int argc, char **argv)
{
	if (MODE("timezone")) {
		char *page = edge_page();
		SHOW("gettimeofday(NULL, 4 bytes before the edge)", syscall(SYS_gettimeofday, NULL, page + 4092));
		SHOW("gettimeofday(NULL, 8 bytes before the edge)", syscall(SYS_gettimeofday, NULL, page + 4088));
		printf("getpid afterwards: %s\n", yes(getpid() > 0));
		return 0;
	}
	if (MODE("path-edge")) {
		char *page = edge_page();
		memset(page, 'a', 4096);
		SHOW("access(96 bytes before the edge)", syscall(SYS_access, page + 4000, F_OK));
		SHOW("mkdir(1 byte before the edge)", syscall(SYS_mkdir, page + 4095, 0700));
		SHOW("access(4096 bytes before the edge)", syscall(SYS_access, page, F_OK));
		return 0;
	}
	if (MODE("exec-only")) {
		unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(p != MAP_FAILED);
		p[0] = 0xb8; /* mov $42, %eax; ret */
		p[1] = 42;
		p[2] = p[3] = p[4] = 0;
		p[5] = 0xc3;
		CHECK(mprotect(p, 4096, PROT_EXEC) == 0);
		printf("read from the exec-only page: %#x\n", *(volatile unsigned char *)p);
		printf("ran it: %d\n", ((int (*)(void))p)());
		unsigned char *q = mmap(NULL, 4096, PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(q != MAP_FAILED);
		printf("read from a fresh exec-only mapping: %d\n", *(volatile unsigned char *)q);
		unsigned char *w = mmap(NULL, 4096, PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(w != MAP_FAILED);
		printf("read from a fresh write-only mapping: %d\n", *(volatile unsigned char *)w);
		w[1] = 7;
		printf("read back from it: %d\n", ((volatile unsigned char *)w)[1]);
		return 0;
	}
	if (MODE("shared-grown")) {
		char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		CHECK(p != MAP_FAILED);
		p[0] = 1;
		char *q = mremap(p, 4096, 3 * 4096, MREMAP_MAYMOVE);
		CHECK(q != MAP_FAILED);
		printf("first page kept: %d\n", q[0]);
		struct sigaction sa = {0};
		sa.sa_sigaction = on_bus;
		sa.sa_flags = SA_SIGINFO;
		CHECK(sigaction(SIGBUS, &sa, NULL) == 0);
		if (sigsetjmp(bus_jump, 1) == 0) {
			(void)*(volatile char *)(q + 4096 + 10);
			printf("grown page readable\n");
		} else {
			printf("SIGBUS: code BUS_ADRERR %s, at the address %s\n", yes(bus_info.si_code == BUS_ADRERR),
			       yes(bus_info.si_addr == q + 4096 + 10));
		}
		return 0;
	}
	if (MODE("mlock")) {
		char *p = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(p != MAP_FAILED);
		const unsigned long huge[] = {-1UL, -2UL, -4096UL, -4097UL, -8192UL};
		const unsigned offsets[] = {0, 1, 2, 100, 4095};
		for (unsigned i = 0; i < sizeof huge / sizeof huge[0]; i++) {
			for (unsigned j = 0; j < sizeof offsets / sizeof offsets[0]; j++) {
				char label[64];
				snprintf(label, sizeof label, "mlock(page+%u, %#lx)", offsets[j], huge[i]);
				SHOW(label, syscall(SYS_mlock, p + offsets[j], huge[i]));
				snprintf(label, sizeof label, "munlock(page+%u, %#lx)", offsets[j], huge[i]);
				SHOW(label, syscall(SYS_munlock, p + offsets[j], huge[i]));
			}
		}
		return 0;
	}
	fprintf(stderr, "usage: fuzzfound timezone|path-edge|exec-only|shared-grown|mlock\n");
	return 2;
}
