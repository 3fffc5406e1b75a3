/* The ioctl request is an unsigned int to the kernel: musl's ioctl() takes
 * it as an int, so a request with the top bit set (every _IOR one, such as
 * TIOCGPTN) reaches the kernel sign-extended, and garbage in the upper half
 * of the register is ignored. Both must behave as natively. */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef BLKGETSIZE64
#define BLKGETSIZE64 _IOR(0x12, 114, size_t)
#endif

static void report(const char *what, long r)
{
	printf("%s: %s\n", what, r < 0 ? errno_name(errno) : "ok");
}

int main(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	CHECK(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0);
	unsigned n = ~0u;
	report("TIOCGPTN through ioctl()", ioctl(m, TIOCGPTN, &n));
	char name[64];
	snprintf(name, sizeof name, "/dev/pts/%u", n);
	printf("its number names the slave: %s\n", yes(!strcmp(name, ptsname(m))));
	unsigned again = ~0u;
	report("TIOCGPTN with garbage in the upper half",
	       syscall(SYS_ioctl, m, 0x1234567800000000UL | TIOCGPTN, &again));
	printf("same number: %s\n", yes(again == n));
	int p[2];
	CHECK(pipe(p) == 0);
	unsigned long long size;
	report("BLKGETSIZE64 on a pipe", ioctl(p[0], BLKGETSIZE64, &size));
	report("TIOCGPTN on a pipe", ioctl(p[0], TIOCGPTN, &n));
	report("TIOCGPTN to a bad pointer", ioctl(m, TIOCGPTN, (void *)8));
	return 0;
}
