/* faults MODE: CPU exceptions delivered to handlers as Linux does.
 *   segv      - SIGSEGV si_addr/si_code: unmapped (SEGV_MAPERR), write to
 *               read-only, read of PROT_NONE, execute of non-exec
 *               (SEGV_ACCERR), non-canonical (#GP: SI_KERNEL, address 0);
 *               each recovered with siglongjmp
 *   ill       - ud2: SIGILL ILL_ILLOPN at the instruction
 *   fpe       - divide by zero and INT_MIN / -1: SIGFPE FPE_INTDIV
 *   trap      - int3: SIGTRAP SI_KERNEL, RIP after the int3; returns
 *   bus       - touching a file mapping past EOF: SIGBUS BUS_ADRERR
 *   overflow  - unbounded recursion, caught on the sigaltstack
 *   segv-blocked - a fault with SIGSEGV blocked still kills (139) */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define PAGE 4096UL

static sigjmp_buf recover;
static siginfo_t info;
static greg_t fault_rip;

static void catch(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	ucontext_t *uc = ucv;
	info = *si;
	fault_rip = uc->uc_mcontext.gregs[REG_RIP];
	siglongjmp(recover, 1);
}

static void on(int sig, int flags)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = catch;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(sig, &sa, NULL) == 0);
}

static const char *code_name(int sig, int code)
{
	if (code == SI_KERNEL)
		return "SI_KERNEL";
	switch (sig) {
	case SIGSEGV:
		return code == SEGV_MAPERR ? "SEGV_MAPERR"
		       : code == SEGV_ACCERR ? "SEGV_ACCERR" : "other";
	case SIGILL:
		return code == ILL_ILLOPN ? "ILL_ILLOPN" : "other";
	case SIGFPE:
		return code == FPE_INTDIV ? "FPE_INTDIV" : "other";
	case SIGBUS:
		return code == BUS_ADRERR ? "BUS_ADRERR" : "other";
	}
	return "other";
}

/* Runs `touch(p)`, which must fault, and prints what the handler saw;
 * si_addr is printed relative to `p` ("addr+0" is exact). */
static void expect_fault(const char *label, void (*touch)(volatile char *),
			 volatile char *p)
{
	if (sigsetjmp(recover, 1) == 0) {
		touch(p);
		printf("%s: no fault\n", label);
		return;
	}
	printf("%s: %s %s, si_addr ", label, signal_name(info.si_signo),
	       code_name(info.si_signo, info.si_code));
	if (info.si_addr == NULL)
		printf("0\n");
	else
		printf("addr%+ld\n", (long)((char *)info.si_addr - (char *)p));
}

static void do_read(volatile char *p)
{
	(void)*p;
}

static void do_write(volatile char *p)
{
	*p = 1;
}

static void do_call(volatile char *p)
{
	((void (*)(void))p)();
}

static void segv(void)
{
	on(SIGSEGV, 0);
	char *m = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	CHECK(munmap(m, PAGE) == 0);
	CHECK(mprotect(m + PAGE, PAGE, PROT_READ) == 0);
	CHECK(mprotect(m + 2 * PAGE, PAGE, PROT_NONE) == 0);

	expect_fault("read of an unmapped page", do_read, m + 123);
	expect_fault("write to an unmapped page", do_write, m + 4000);
	expect_fault("write to a read-only page", do_write, m + PAGE + 5);
	expect_fault("read of a PROT_NONE page", do_read, m + 2 * PAGE + 77);
	expect_fault("call into a non-exec page", do_call, m + PAGE);
	expect_fault("read through NULL+16", do_read, (volatile char *)16);
	expect_fault("read of a non-canonical address", do_read,
		     (volatile char *)0x8000000000000000UL);
	/* The mask was restored by siglongjmp: a later fault is caught too. */
	expect_fault("read of an unmapped page again", do_read, m);
}

extern char ud2_at[], div_at[], div2_at[], int3_after[];

static void ill(void)
{
	on(SIGILL, 0);
	if (sigsetjmp(recover, 1) == 0)
		asm volatile(".globl ud2_at\nud2_at: ud2");
	printf("ud2: %s %s, si_addr at the ud2 %s, rip there %s\n",
	       signal_name(info.si_signo), code_name(info.si_signo, info.si_code),
	       info.si_addr == (void *)ud2_at ? "yes" : "no",
	       fault_rip == (greg_t)ud2_at ? "yes" : "no");
}

static void fpe(void)
{
	on(SIGFPE, 0);
	if (sigsetjmp(recover, 1) == 0)
		asm volatile("xor %%edx, %%edx\n\t"
			     "xor %%ecx, %%ecx\n\t"
			     "mov $42, %%eax\n\t"
			     ".globl div_at\ndiv_at: idiv %%ecx" ::: "eax", "ecx", "edx");
	printf("divide by zero: %s %s, si_addr at the idiv %s\n",
	       signal_name(info.si_signo), code_name(info.si_signo, info.si_code),
	       info.si_addr == (void *)div_at ? "yes" : "no");
	if (sigsetjmp(recover, 1) == 0)
		asm volatile("mov $-1, %%ecx\n\t"
			     "mov %0, %%eax\n\t"
			     "cltd\n\t"
			     ".globl div2_at\ndiv2_at: idiv %%ecx"
			     :: "i"(INT_MIN) : "eax", "ecx", "edx");
	printf("INT_MIN / -1: %s %s, si_addr at the idiv %s\n",
	       signal_name(info.si_signo), code_name(info.si_signo, info.si_code),
	       info.si_addr == (void *)div2_at ? "yes" : "no");
}

static volatile int traps;
static int trap_code;
static greg_t trap_rip;

static void on_trap(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	trap_code = si->si_code;
	trap_rip = ((ucontext_t *)ucv)->uc_mcontext.gregs[REG_RIP];
	traps++;
}

static void trap(void)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO;
	CHECK(sigaction(SIGTRAP, &sa, NULL) == 0);
	asm volatile("int3\n.globl int3_after\nint3_after:");
	printf("int3: traps %d, %s, rip after the int3 %s, execution continued\n",
	       traps, code_name(SIGTRAP, trap_code),
	       trap_rip == (greg_t)int3_after ? "yes" : "no");
}

static void bus(const char *dir)
{
	on(SIGBUS, 0);
	char path[4096];
	snprintf(path, sizeof path, "%s/short", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, "x", 1) == 1);
	char *m = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	printf("inside the file's last page: %c\n", m[0]);
	expect_fault("past the file's last page", do_read, m + PAGE + 8);
}

static stack_t alt;
static volatile long depth, limit = LONG_MAX;
static int on_alt;

static void catch_on_alt(int sig, siginfo_t *si, void *ucv)
{
	(void)ucv;
	char local;
	char *lo = alt.ss_sp;
	info = *si;
	info.si_signo = sig;
	on_alt = &local >= lo && &local < lo + alt.ss_size;
	siglongjmp(recover, 1);
}

/* Never reaches `limit`; the test does not let the compiler know. */
static long recurse(long n)
{
	volatile char pad[512];
	pad[0] = (char)n;
	depth = n;
	return n < limit ? recurse(n + 1) + pad[0] : 0;
}

static void overflow(void)
{
	alt.ss_size = 64 * 1024;
	alt.ss_sp = malloc(alt.ss_size);
	CHECK(alt.ss_sp && sigaltstack(&alt, NULL) == 0);
	struct sigaction sa = {0};
	sa.sa_sigaction = catch_on_alt;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
	if (sigsetjmp(recover, 1) == 0)
		recurse(0);
	printf("stack overflow: %s, handled on the alternate stack: %s, deep: %s\n",
	       signal_name(info.si_signo), on_alt ? "yes" : "no",
	       depth > 1000 ? "yes" : "no");
}

static void segv_blocked(void)
{
	on(SIGSEGV, 0);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGSEGV);
	CHECK(sigprocmask(SIG_BLOCK, &s, NULL) == 0);
	printf("faulting with SIGSEGV blocked\n");
	fflush(stdout);
	volatile char *volatile null = NULL;
	do_read(null);
	printf("survived\n");
}

int main(int argc, char **argv)
{
	if (MODE("segv"))
		segv();
	else if (MODE("ill"))
		ill();
	else if (MODE("fpe"))
		fpe();
	else if (MODE("trap"))
		trap();
	else if (MODE("bus") && argc > 2)
		bus(argv[2]);
	else if (MODE("overflow"))
		overflow();
	else if (MODE("segv-blocked"))
		segv_blocked();
	else {
		fprintf(stderr, "usage: faults segv|ill|fpe|trap|bus DIR|overflow|"
				"segv-blocked\n");
		return 2;
	}
	return 0;
}
