/* fuzzfound MODE: deterministic cases for what the syscall fuzzer (fuzz.c)
 * found in km, run natively and under km.
 *   timezone - gettimeofday's struct timezone straddling the end of the
 *              payload's address range (the page below 511 GiB, where km's
 *              monitor area begins): EFAULT, and the next call still works */
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
	fprintf(stderr, "usage: fuzzfound timezone\n");
	return 2;
}
