/* fuzzfound MODE: deterministic cases for what the syscall fuzzer (fuzz.c)
 * found in km, run natively and under km.
 *   timezone - gettimeofday's struct timezone straddling the end of the
 *              payload's address range (the page below 511 GiB, where km's
 *              monitor area begins): EFAULT, and the next call still works
 *   mlock    - mlock/munlock lengths that overflow when the offset into
 *              the first page is added: Linux wraps them (to nothing, or
 *              to one page) or fails with EINVAL */
#define _GNU_SOURCE
#include "common.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The last page below km's monitor area (free natively too). */
#define EDGE (511UL << 30)

int main(int argc, char **argv)
{
	if (MODE("timezone")) {
		char *page = mmap((void *)(EDGE - 4096), 4096, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		CHECK(page == (void *)(EDGE - 4096));
		SHOW("gettimeofday(NULL, 4 bytes before the edge)", syscall(SYS_gettimeofday, NULL, page + 4092));
		SHOW("gettimeofday(NULL, 8 bytes before the edge)", syscall(SYS_gettimeofday, NULL, page + 4088));
		printf("getpid afterwards: %s\n", yes(getpid() > 0));
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
	fprintf(stderr, "usage: fuzzfound timezone|mlock\n");
	return 2;
}
