/* hostile-signals MODE: a payload that aims signal frames, sigreturn, stored
 * tid pointers and privileged instructions at memory and state that is not
 * its own. Every case must end as it does natively: a SIGSEGV (caught, or
 * fatal), an ignored store, or an error; under km never a write into km.
 *
 * The wild addresses are where a host process keeps things: a PIE and its
 * heap (0x5555...), mmap and stack areas (0x7fff...), the top GiB of km's
 * guest window (km's monitor area: landing pad, IST stacks, signal scratch),
 * the page below the window, the kernel half, non-canonical and NULL.
 *
 *   wild-rsp        - rsp at each wild address, SIGUSR1 raised: the frame
 *                     cannot be written, SIGSEGV (SI_KERNEL) is caught on
 *                     the altstack with the wild rsp in its frame; the
 *                     same at the payload's read-only, PROT_NONE and code
 *                     pages
 *   wild-rsp-fatal N- the same for wild address N without a SIGSEGV
 *                     handler: death by SIGSEGV
 *   segv-blocked    - ... with SIGSEGV blocked: forced, death
 *   segv-ignored    - ... with SIGSEGV ignored: forced, death
 *   segv-own-frame  - SIGSEGV's own frame cannot be written: death
 *   altstack-wild   - sigaltstack at each wild address (accepted, as
 *                     natively); an SA_ONSTACK handler's frame fails and
 *                     SIGSEGV is caught on the ordinary stack
 *   altstack-wild-fatal - ... and SIGSEGV's handler is SA_ONSTACK: death
 *   nested-onstack  - inside an altstack handler, rsp wild and a second
 *                     SA_ONSTACK signal: its frame goes at the top of the
 *                     altstack again, as Linux places it
 *   autodisarm-nested - SS_AUTODISARM: inside the altstack handler the
 *                     altstack is off, so a wild rsp is fatal there
 *   sigreturn       - handlers edit their frame: selectors, FPU image,
 *                     flags; bad ones are SIGSEGV after the return, good
 *                     ones take effect; rt_sigreturn at a wild rsp
 *   tid             - clone's PARENT_SETTID/CHILD_SETTID/CHILD_CLEARTID,
 *                     set_tid_address and the robust list at wild
 *                     addresses: stores skipped, threads run and exit
 *   ports [NAME]    - in/out on km's exit ports (also with rsp at km's
 *                     IST stacks) and others, cli, sti, hlt, int $n,
 *                     rdmsr, mov from cr3, sysretq, lretq/iretq to ring 0:
 *                     SIGSEGV SI_KERNEL at the instruction (SIGTRAP for
 *                     int $3) as natively; popf and a syscall with forged
 *                     rcx/r11 leave IOPL 0
 *   touch [WORD]    - a load and a store at each wild address: SIGSEGV
 *                     MAPERR (SI_KERNEL where non-canonical); with WORD,
 *                     the addresses whose name has it are left out
 *   vdso-spin       - a thread that only reads the vDSO clock is stopped
 *                     by a signal, 20 times
 *   pad             - a jump into km's landing pad address (natively
 *                     unmapped: SIGSEGV; under km on PVM it is a syscall
 *                     with sanitized flags, see docs/architecture.md) */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static const struct {
	const char *name;
	uintptr_t addr;
} wild[] = {
	{"host PIE", 0x555555554000UL + 0x2000},
	{"host heap", 0x555555554000UL + 0x400000},
	{"host mmap", 0x7ffff7ff0000UL},
	{"host stack", 0x7ffffffde000UL + 0x10000},
	{"monitor pad", 0x7fc0000000UL + 0x800},
	{"monitor IDT stubs", 0x7fc0001000UL + 0x800},
	{"monitor GDT", 0x7fc0002000UL + 0x800},
	{"monitor IST", 0x7fc0200000UL + 0x800},
	{"monitor scratch", 0x7fc0600000UL + 0x800},
	{"monitor tables", 0x7fc0800000UL + 0x800},
	{"window top", 0x8000000000UL - 0x100},
	{"below window", 0x1ff000UL},
	{"kernel", 0xffffffff81000000UL},
	{"non-canonical", 0x800000000000UL},
	{"NULL page", 0x800UL},
};
#define NWILD (sizeof wild / sizeof wild[0])

static sigjmp_buf recover;
static volatile int caught_sig, caught_code, usr1_ran, usr2_ran;
static volatile uintptr_t caught_addr, caught_rsp, caught_rip;
static volatile int caught_on_alt;
static char altmem[64 * 1024];

static int on_altmem(const void *p)
{
	return (const char *)p >= altmem && (const char *)p < altmem + sizeof altmem;
}

static void catch_segv(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	char here;
	caught_sig = sig;
	caught_code = si->si_code;
	caught_addr = (uintptr_t)si->si_addr;
	caught_rsp = uc->uc_mcontext.gregs[REG_RSP];
	caught_rip = uc->uc_mcontext.gregs[REG_RIP];
	caught_on_alt = on_altmem(&here);
	siglongjmp(recover, 1);
}

static void mark_usr1(int sig)
{
	(void)sig;
	usr1_ran = 1;
}

static void handle(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(sig, &sa, NULL) == 0);
}

static void handle_plain(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa = {0};
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(sig, &sa, NULL) == 0);
}

static void use_altstack(int flags)
{
	stack_t ss = {.ss_sp = altmem, .ss_size = sizeof altmem, .ss_flags = flags};
	CHECK(sigaltstack(&ss, NULL) == 0);
}

extern char after_wild_kill[];

/* Sends `sig` to this process with rsp at `sp` (no stack is used while rsp
 * is wild), then puts rsp back; the signal is delivered as the syscall
 * returns, so its frame is due at `sp`. */
__attribute__((noinline)) static void kill_with_rsp(uintptr_t sp, int sig)
{
	long pid = getpid();
	asm volatile("mov %%rsp, %%r12\n\t"
		     "mov %[sp], %%rsp\n\t"
		     "mov %[nr], %%eax\n\t"
		     "syscall\n\t"
		     ".globl after_wild_kill\nafter_wild_kill:\n\t"
		     "mov %%r12, %%rsp"
		     :
		     : [sp] "r"(sp), [nr] "i"(SYS_kill), "D"(pid), "S"((long)sig)
		     : "rax", "rcx", "r11", "r12", "memory");
}

static const char *code_name(int code)
{
	switch (code) {
	case SI_KERNEL: return "SI_KERNEL";
	case SEGV_MAPERR: return "SEGV_MAPERR";
	case SEGV_ACCERR: return "SEGV_ACCERR";
	case SI_USER: return "SI_USER";
	default: return "other";
	}
}

static void wild_rsp(void)
{
	use_altstack(0);
	handle(SIGSEGV, catch_segv, SA_ONSTACK);
	handle_plain(SIGUSR1, mark_usr1, 0);
	for (size_t i = 0; i < NWILD; i++) {
		usr1_ran = caught_sig = 0;
		if (sigsetjmp(recover, 1) == 0) {
			kill_with_rsp(wild[i].addr, SIGUSR1);
			printf("rsp at %s: no signal\n", wild[i].name);
			continue;
		}
		printf("rsp at %s: %s %s, si_addr %s, on the altstack %s, "
		       "frame has the wild rsp %s and rip after the syscall %s, "
		       "SIGUSR1 handler ran %s\n",
		       wild[i].name, signal_name(caught_sig), code_name(caught_code),
		       caught_addr ? "set" : "0", yes(caught_on_alt),
		       yes(caught_rsp == wild[i].addr),
		       yes(caught_rip == (uintptr_t)after_wild_kill), yes(usr1_ran));
	}
	/* The payload's own pages that a frame cannot go to: read-only,
	 * PROT_NONE, and its code. */
	char *m = mmap(NULL, 2 * 65536, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	CHECK(mprotect(m + 65536, 65536, PROT_NONE) == 0);
	const struct {
		const char *name;
		uintptr_t addr;
	} own[] = {
		{"a read-only page", (uintptr_t)m + 65536 - 256},
		{"a PROT_NONE page", (uintptr_t)m + 2 * 65536 - 256},
		{"the code", (uintptr_t)wild_rsp},
	};
	for (volatile size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
		usr1_ran = caught_sig = 0;
		if (sigsetjmp(recover, 1) == 0) {
			kill_with_rsp(own[i].addr, SIGUSR1);
			printf("rsp at %s: no signal\n", own[i].name);
			continue;
		}
		printf("rsp at %s: %s %s, on the altstack %s, SIGUSR1 handler ran %s\n", own[i].name,
		       signal_name(caught_sig), code_name(caught_code), yes(caught_on_alt), yes(usr1_ran));
	}
	/* Still alive and well: the ordinary stack and signals work. */
	raise(SIGUSR1);
	printf("after all: SIGUSR1 handler ran %s\n", yes(usr1_ran));
}

static void wild_rsp_fatal(const char *which)
{
	handle_plain(SIGUSR1, mark_usr1, 0);
	size_t i = strtoul(which, NULL, 0);
	CHECK(i < NWILD);
	printf("rsp at %s, no SIGSEGV handler\n", wild[i].name);
	fflush(stdout);
	kill_with_rsp(wild[i].addr, SIGUSR1);
	printf("survived\n");
}

static void segv_blocked(void)
{
	use_altstack(0);
	handle(SIGSEGV, catch_segv, SA_ONSTACK);
	handle_plain(SIGUSR1, mark_usr1, 0);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGSEGV);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	printf("SIGSEGV blocked, rsp at %s\n", wild[0].name);
	fflush(stdout);
	kill_with_rsp(wild[0].addr, SIGUSR1);
	printf("survived\n");
}

static void segv_ignored(void)
{
	handle_plain(SIGSEGV, SIG_IGN, 0);
	handle_plain(SIGUSR1, mark_usr1, 0);
	printf("SIGSEGV ignored, rsp at %s\n", wild[4].name);
	fflush(stdout);
	kill_with_rsp(wild[4].addr, SIGUSR1);
	printf("survived\n");
}

static void segv_own_frame(void)
{
	handle(SIGSEGV, catch_segv, 0);
	printf("SIGSEGV raised with rsp at %s\n", wild[2].name);
	fflush(stdout);
	kill_with_rsp(wild[2].addr, SIGSEGV);
	printf("survived\n");
}

static void on_usr1_where(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	usr1_ran = 1;
}

static void altstack_wild(void)
{
	handle(SIGSEGV, catch_segv, 0);
	handle(SIGUSR1, on_usr1_where, SA_ONSTACK);
	for (size_t i = 0; i < NWILD; i++) {
		stack_t ss = {.ss_sp = (void *)wild[i].addr, .ss_size = 64 * 1024};
		errno = 0;
		int r = sigaltstack(&ss, NULL);
		usr1_ran = caught_sig = 0;
		if (r == 0 && sigsetjmp(recover, 1) == 0) {
			raise(SIGUSR1);
			printf("altstack at %s: no SIGSEGV, handler ran %s\n", wild[i].name, yes(usr1_ran));
			continue;
		}
		if (r != 0) {
			printf("altstack at %s: sigaltstack %s\n", wild[i].name, errno_name(errno));
			continue;
		}
		printf("altstack at %s: %s %s, on the altstack %s, SIGUSR1 handler ran %s\n",
		       wild[i].name, signal_name(caught_sig), code_name(caught_code),
		       yes(caught_on_alt), yes(usr1_ran));
	}
	stack_t off = {.ss_flags = SS_DISABLE};
	CHECK(sigaltstack(&off, NULL) == 0);
	raise(SIGUSR1);
	printf("after all: SIGUSR1 handler ran %s\n", yes(usr1_ran));
}

static void altstack_wild_fatal(void)
{
	handle(SIGSEGV, catch_segv, SA_ONSTACK);
	handle(SIGUSR1, on_usr1_where, SA_ONSTACK);
	stack_t ss = {.ss_sp = (void *)wild[1].addr, .ss_size = 64 * 1024};
	CHECK(sigaltstack(&ss, NULL) == 0);
	printf("altstack at %s for SIGUSR1 and SIGSEGV\n", wild[1].name);
	fflush(stdout);
	raise(SIGUSR1);
	printf("survived\n");
}

static volatile int nested_on_alt_top;

static void on_usr2_nested(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	(void)ucv;
	char here;
	usr2_ran = 1;
	/* Linux puts the frame at the top of the altstack again (rsp is not
	 * on it), over the SIGUSR1 frame below. */
	nested_on_alt_top = on_altmem(&here) && &here > altmem + sizeof altmem - 4096;
	siglongjmp(recover, 2);
}

static void on_usr1_nested(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	(void)ucv;
	char here;
	usr1_ran = on_altmem(&here);
	kill_with_rsp(wild[3].addr, SIGUSR2);
}

static void nested_onstack(void)
{
	use_altstack(0);
	handle(SIGUSR1, on_usr1_nested, SA_ONSTACK);
	handle(SIGUSR2, on_usr2_nested, SA_ONSTACK);
	handle(SIGSEGV, catch_segv, SA_ONSTACK);
	int r = sigsetjmp(recover, 1);
	if (r == 0) {
		raise(SIGUSR1);
		printf("no nested signal\n");
		return;
	}
	printf("nested: SIGUSR1 on the altstack %s, SIGUSR2 ran %s, at the altstack top %s, SIGSEGV %s\n",
	       yes(usr1_ran), yes(usr2_ran), yes(nested_on_alt_top), yes(caught_sig != 0));
}

static void on_usr1_disarmed(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	(void)ucv;
	stack_t cur;
	CHECK(sigaltstack(NULL, &cur) == 0);
	printf("in the handler: altstack %s\n", cur.ss_flags & SS_DISABLE ? "disabled" : "enabled");
	fflush(stdout);
	kill_with_rsp(wild[1].addr, SIGUSR2);
	printf("survived\n");
}

static void autodisarm_nested(void)
{
	use_altstack(SS_AUTODISARM);
	handle(SIGUSR1, on_usr1_disarmed, SA_ONSTACK);
	handle(SIGUSR2, on_usr1_where, SA_ONSTACK);
	handle(SIGSEGV, catch_segv, SA_ONSTACK);
	raise(SIGUSR1);
	printf("survived\n");
}


/* ---- sigreturn ---- */

enum edit {
	KEEP, CS_KERNEL, CS_DATA, CS_NULL, CS_RPL0, SS_KERNEL_STRICT, SS_KERNEL_LAX,
	MXCSR_RESERVED, FPSTATE_NULL, FPSTATE_WILD, FPSTATE_MISALIGNED, FLAGS,
};
static const char *const edit_name[] = {
	[KEEP] = "nothing edited", [CS_KERNEL] = "cs 0x10 (kernel code)",
	[CS_DATA] = "cs 0x2b (user data)", [CS_NULL] = "cs 0 (null)",
	[CS_RPL0] = "cs 0x30 (user code, RPL 0)",
	[SS_KERNEL_STRICT] = "ss 0x18 (kernel data), strict",
	[SS_KERNEL_LAX] = "ss 0x18 (kernel data), not strict",
	[MXCSR_RESERVED] = "MXCSR reserved bit", [FPSTATE_NULL] = "fpstate NULL",
	[FPSTATE_WILD] = "fpstate at host heap", [FPSTATE_MISALIGNED] = "fpstate misaligned",
	[FLAGS] = "rflags IOPL NT VM VIF VIP AC DF CF, ID flipped",
};
#define UC_STRICT_RESTORE_SS 4
#define F_CF 0x1UL
#define F_DF 0x400UL
#define F_IOPL 0x3000UL
#define F_NT 0x4000UL
#define F_VM 0x20000UL
#define F_AC 0x40000UL
#define F_VIF 0x80000UL
#define F_VIP 0x100000UL
#define F_ID 0x200000UL

static volatile enum edit edit;
static unsigned mxcsr;
static volatile unsigned frame_cs, frame_ss;

static void edit_frame(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	uint64_t csgsfs = g[REG_CSGSFS];
	frame_cs = csgsfs & 0xffff;
	frame_ss = csgsfs >> 48;
	uint64_t keep = csgsfs & 0x0000ffffffff0000UL;
	switch (edit) {
	case KEEP: break;
	case CS_KERNEL: g[REG_CSGSFS] = keep | 0x10 | (uint64_t)frame_ss << 48; break;
	case CS_DATA: g[REG_CSGSFS] = keep | 0x2b | (uint64_t)frame_ss << 48; break;
	case CS_NULL: g[REG_CSGSFS] = keep | (uint64_t)frame_ss << 48; break;
	case CS_RPL0: g[REG_CSGSFS] = keep | 0x30 | (uint64_t)frame_ss << 48; break;
	case SS_KERNEL_STRICT:
		uc->uc_flags |= UC_STRICT_RESTORE_SS;
		g[REG_CSGSFS] = keep | frame_cs | 0x18UL << 48;
		break;
	case SS_KERNEL_LAX:
		uc->uc_flags &= ~(unsigned long)UC_STRICT_RESTORE_SS;
		g[REG_CSGSFS] = keep | frame_cs | 0x18UL << 48;
		break;
	case MXCSR_RESERVED: uc->uc_mcontext.fpregs->mxcsr |= 1 << 16; break;
	case FPSTATE_NULL: uc->uc_mcontext.fpregs = NULL; break;
	case FPSTATE_WILD: uc->uc_mcontext.fpregs = (void *)wild[1].addr; break;
	case FPSTATE_MISALIGNED:
		uc->uc_mcontext.fpregs = (void *)((char *)uc->uc_mcontext.fpregs + 8);
		break;
	case FLAGS:
		g[REG_EFL] |= F_IOPL | F_NT | F_VM | F_VIF | F_VIP | F_AC | F_DF | F_CF;
		g[REG_EFL] ^= F_ID;
		break;
	}
}

extern char sr_after[];

static void sigreturn_edits(void)
{
	use_altstack(0);
	handle(SIGSEGV, catch_segv, SA_ONSTACK);
	handle(SIGUSR1, edit_frame, 0);
	long pid = getpid();
	for (enum edit e = KEEP; e <= FLAGS; e++) {
		edit = e;
		caught_sig = 0;
		uint64_t before, after;
		unsigned ss;
		mxcsr = 0x3f80;
		asm volatile("ldmxcsr %0" ::"m"(mxcsr));
		if (sigsetjmp(recover, 1) == 0) {
			asm volatile("lea -128(%%rsp), %%rsp\n\t"
				     "pushfq\n\t"
				     "pop %[before]\n\t"
				     "mov %[nr], %%eax\n\t"
				     "syscall\n\t"
				     ".globl sr_after\nsr_after:\n\t"
				     "pushfq\n\t"
				     "pop %[after]\n\t"
				     "stmxcsr %[mxcsr]\n\t"
				     "mov %%ss, %k[ss]\n\t"
				     "push %[before]\n\t"
				     "popfq\n\t"
				     "lea 128(%%rsp), %%rsp"
				     : [before] "=&r"(before), [after] "=&r"(after), [ss] "=&r"(ss),
				       [mxcsr] "=m"(mxcsr)
				     : [nr] "i"(SYS_kill), "D"(pid), "S"((long)SIGUSR1)
				     : "rax", "rcx", "r11", "memory", "cc");
			printf("%s: returned, frame cs %#x ss %#x, now ss %#x", edit_name[e], frame_cs,
			       frame_ss, ss);
			if (e == FPSTATE_NULL || e == KEEP)
				printf(", MXCSR %#x", mxcsr);
			if (e == FLAGS)
				printf(", IOPL %lu NT %d VM %d VIF %d VIP %d AC %d DF %d CF %d, ID kept %s",
				       (after & F_IOPL) >> 12, !!(after & F_NT), !!(after & F_VM),
				       !!(after & F_VIF), !!(after & F_VIP), !!(after & F_AC),
				       !!(after & F_DF), !!(after & F_CF),
				       yes((after & F_ID) == (before & F_ID)));
			printf("\n");
		} else {
			printf("%s: %s %s, si_addr %s, on the altstack %s\n", edit_name[e],
			       signal_name(caught_sig), code_name(caught_code), caught_addr ? "set" : "0",
			       yes(caught_on_alt));
		}
		mxcsr = 0x1f80;
		asm volatile("ldmxcsr %0" ::"m"(mxcsr));
	}
	/* rt_sigreturn with rsp at a wild address: the frame cannot be read. */
	for (volatile size_t i = 0; i < NWILD; i++) {
		caught_sig = 0;
		if (sigsetjmp(recover, 1) == 0) {
			asm volatile("mov %%rsp, %%r12\n\t"
				     "mov %[sp], %%rsp\n\t"
				     "mov %[nr], %%eax\n\t"
				     "syscall\n\t"
				     "mov %%r12, %%rsp"
				     :
				     : [sp] "r"(wild[i].addr), [nr] "i"(SYS_rt_sigreturn)
				     : "rax", "rcx", "r11", "r12", "memory");
			printf("rt_sigreturn at %s: returned\n", wild[i].name);
			continue;
		}
		printf("rt_sigreturn at %s: %s %s, frame has the wild rsp %s\n", wild[i].name,
		       signal_name(caught_sig), code_name(caught_code), yes(caught_rsp == wild[i].addr));
	}
}

/* ---- stored tid pointers ---- */

static char thread_stack[64 * 1024] __attribute__((aligned(16)));
static const char one_byte = 'x';

/* A raw CLONE_THREAD child on thread_stack: optionally set_tid_address(tid_at)
 * and set_robust_list(robust, 24), then one byte to `fd` and exit(0). */
__attribute__((noinline)) static long raw_thread(unsigned long flags, int *ptid, int *ctid, int fd,
						  uintptr_t tid_at, uintptr_t robust)
{
	register long r10 asm("r10") = (long)ctid;
	register long r8 asm("r8") = 0;
	register long r12 asm("r12") = fd;
	register long r13 asm("r13") = (long)tid_at;
	register long r14 asm("r14") = (long)robust;
	register long r15 asm("r15") = (long)&one_byte;
	long ret;
	asm volatile("syscall\n\t"
		     "test %%rax, %%rax\n\t"
		     "jnz 1f\n\t"
		     "test %%r13, %%r13\n\t"
		     "jz 2f\n\t"
		     "mov %%r13, %%rdi\n\t"
		     "mov %[set_tid], %%eax\n\t"
		     "syscall\n"
		     "2:\n\t"
		     "test %%r14, %%r14\n\t"
		     "jz 3f\n\t"
		     "mov %%r14, %%rdi\n\t"
		     "mov $24, %%esi\n\t"
		     "mov %[set_robust], %%eax\n\t"
		     "syscall\n"
		     "3:\n\t"
		     "mov %%r12, %%rdi\n\t"
		     "mov %%r15, %%rsi\n\t"
		     "mov $1, %%edx\n\t"
		     "mov %[write], %%eax\n\t"
		     "syscall\n\t"
		     "xor %%edi, %%edi\n\t"
		     "mov %[exit], %%eax\n\t"
		     "syscall\n\t"
		     "ud2\n"
		     "1:"
		     : "=a"(ret)
		     : "a"(SYS_clone), "D"(flags), "S"(thread_stack + sizeof thread_stack), "d"(ptid),
		       "r"(r10), "r"(r8), "r"(r12), "r"(r13), "r"(r14), "r"(r15),
		       [set_tid] "i"(SYS_set_tid_address), [set_robust] "i"(SYS_set_robust_list),
		       [write] "i"(SYS_write), [exit] "i"(SYS_exit)
		     : "rcx", "r11", "memory");
	return ret;
}

#define THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM)

/* A tid word the test owns: neither NULL nor one of the wild addresses. */
static int own_word(int *p)
{
	for (size_t i = 0; i < NWILD; i++)
		if ((uintptr_t)p == wild[i].addr)
			return 0;
	return p != NULL;
}

/* Runs a raw thread and waits until it has written its byte and is gone;
 * then shows the tid words that are the payload's own. */
static void run_thread(const char *label, unsigned long flags, int *ptid, int *ctid, uintptr_t tid_at,
		       uintptr_t robust)
{
	int p[2];
	CHECK(pipe(p) == 0);
	long tid = raw_thread(THREAD_FLAGS | flags, ptid, ctid, p[1], tid_at, robust);
	if (tid < 0) {
		printf("%s: clone %s\n", label, errno_name(-tid));
		close(p[0]);
		close(p[1]);
		return;
	}
	char c = 0;
	CHECK(read(p[0], &c, 1) == 1);
	while (syscall(SYS_tgkill, getpid(), tid, 0) == 0)
		sched_yield();
	int gone = errno == ESRCH;
	printf("%s: child ran %s, gone %s", label, yes(c == 'x'), yes(gone));
	if (own_word(ptid))
		printf(", parent tid word %s", yes(*ptid == tid));
	if (own_word(ctid))
		printf(", child tid word %s", *ctid == 0 ? "cleared" : *ctid == tid ? "holds tid" : "other");
	printf("\n");
	close(p[0]);
	close(p[1]);
}

static const size_t tid_wild[] = {1, 2, 3, 6, 5, 10, 12};

static void tids(void)
{
	char label[128];
	for (size_t k = 0; k < sizeof tid_wild / sizeof tid_wild[0]; k++) {
		uintptr_t w = wild[tid_wild[k]].addr;
		const char *n = wild[tid_wild[k]].name;
		int ptid = -1, ctid = -1;
		snprintf(label, sizeof label, "PARENT_SETTID at %s", n);
		run_thread(label, CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID,
			   (int *)w, &ctid, 0, 0);
		snprintf(label, sizeof label, "CHILD_SETTID+CLEARTID at %s", n);
		run_thread(label, CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID, &ptid,
			   (int *)w, 0, 0);
		ctid = -1;
		snprintf(label, sizeof label, "set_tid_address(%s) in the child", n);
		run_thread(label, CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID, NULL, &ctid, w, 0);
		snprintf(label, sizeof label, "robust list head at %s", n);
		run_thread(label, 0, NULL, NULL, 0, w);
		/* A real head whose entries and pending pointer are wild. */
		static uintptr_t head[3];
		head[0] = w;
		head[1] = 0;
		head[2] = w + 64;
		snprintf(label, sizeof label, "robust list entries at %s", n);
		run_thread(label, 0, NULL, NULL, 0, (uintptr_t)head);

		uintptr_t got = 0;
		size_t len = 0;
		SHOW("set_robust_list(wild)", syscall(SYS_set_robust_list, w, 24));
		SHOW("get_robust_list", syscall(SYS_get_robust_list, 0, &got, &len));
		printf("head is the wild one %s, len %zu\n", yes(got == w), len);
		SHOW("get_robust_list(head_ptr wild)", syscall(SYS_get_robust_list, 0, w, &len));
		SHOW("get_robust_list(len_ptr wild)", syscall(SYS_get_robust_list, 0, &got, w));
	}
	SHOW("set_robust_list(size 23)", syscall(SYS_set_robust_list, 0, 23));
	SHOW("set_robust_list(NULL)", syscall(SYS_set_robust_list, 0, 24));
}


/* ---- privileged instructions and km's exit ports ---- */

static volatile greg_t caught_err, caught_trapno;

static void catch_gp(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	caught_err = uc->uc_mcontext.gregs[REG_ERR];
	caught_trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
	catch_segv(sig, si, ucv);
}

#define KM_SYSCALL_PORT "0xf0"
#define KM_FAULT_PORT "0xf1"

/* Each snippet starts at label <name>_at; eax is exit_group and edi 42, so
 * an `out` km took for a syscall would end the payload with status 42. */
#define SNIPPET(name, code)                                                   \
	extern char name##_at[];                                              \
	__attribute__((noinline)) static void name(void)                      \
	{                                                                     \
		asm volatile("mov $231, %%eax\n\t"                            \
			     "mov $42, %%edi\n\t"                             \
			     "mov $" KM_SYSCALL_PORT ", %%edx\n\t"            \
			     "lea scratch_byte(%%rip), %%rsi\n\t"             \
			     ".globl " #name "_at\n" #name "_at:\n\t" code    \
			     ::: "rax", "rdx", "rdi", "rsi", "rcx", "r11", "memory"); \
	}

char scratch_byte;
SNIPPET(out_syscall_port, "outb %%al, $" KM_SYSCALL_PORT)
SNIPPET(out_fault_port, "outb %%al, $" KM_FAULT_PORT)
SNIPPET(out_dx_syscall_port, "outb %%al, %%dx")
SNIPPET(outl_syscall_port, "outl %%eax, $" KM_SYSCALL_PORT)
SNIPPET(outsb_syscall_port, "outsb")
SNIPPET(in_syscall_port, "inb $" KM_SYSCALL_PORT ", %%al")
SNIPPET(in_dx_fault_port, "inc %%edx\n\tinb %%dx, %%al")
SNIPPET(out_port_80, "outb %%al, $0x80")
SNIPPET(cli_insn, "cli")
SNIPPET(sti_insn, "sti")
SNIPPET(hlt_insn, "hlt")
SNIPPET(int13_insn, "int $13")
SNIPPET(int14_insn, "int $14")
SNIPPET(int_0xff_insn, "int $0xff")
SNIPPET(int3_long_insn, "int $3")
SNIPPET(into_long_insn, "int $4")
SNIPPET(rdmsr_insn, "mov $0xc0000082, %%ecx\n\trdmsr")
SNIPPET(mov_cr3_insn, "mov %%cr3, %%rax")
SNIPPET(sysret_insn, "sysretq")
SNIPPET(lret_kernel_insn, "pushq $0x10\n\tlea 1f(%%rip), %%rcx\n\tpushq %%rcx\n\tlretq\n1:")
SNIPPET(iret_kernel_insn,
	"mov %%ss, %%ecx\n\tpushq %%rcx\n\tpushq %%rsp\n\taddq $8, (%%rsp)\n\tpushfq\n\t"
	"orq $0x3000, (%%rsp)\n\tpushq $0x10\n\tlea 1f(%%rip), %%rcx\n\tpushq %%rcx\n\tiretq\n1:")
/* The fault port with rsp in km's IST area, where a real fault report is. */
SNIPPET(out_fault_port_ist, "mov %%rsp, %%r11\n\tmov $0x7fc0200fd0, %%rsp\n\t"
	"outb %%al, $" KM_FAULT_PORT "\n\tmov %%r11, %%rsp")

static void ports(const char *only)
{
	static const struct {
		const char *name;
		void (*fn)(void);
		const char *at;
	} cases[] = {
#define CASE(n) {#n, n, n##_at}
		CASE(out_syscall_port), CASE(out_fault_port), CASE(out_dx_syscall_port),
		CASE(outl_syscall_port), CASE(outsb_syscall_port), CASE(in_syscall_port),
		CASE(in_dx_fault_port), CASE(out_port_80), CASE(cli_insn), CASE(sti_insn),
		CASE(hlt_insn), CASE(int13_insn), CASE(int14_insn), CASE(int_0xff_insn), CASE(int3_long_insn),
		CASE(into_long_insn), CASE(rdmsr_insn),
		CASE(mov_cr3_insn), CASE(sysret_insn), CASE(lret_kernel_insn),
		CASE(iret_kernel_insn), CASE(out_fault_port_ist),
#undef CASE
	};
	use_altstack(0);
	handle(SIGSEGV, catch_gp, SA_ONSTACK);
	handle(SIGILL, catch_gp, SA_ONSTACK);
	handle(SIGTRAP, catch_gp, SA_ONSTACK);
	for (volatile size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		caught_sig = 0;
		if (only && strcmp(only, cases[i].name) != 0)
			continue;
		if (sigsetjmp(recover, 1) == 0) {
			cases[i].fn();
			printf("%s: no signal\n", cases[i].name);
			continue;
		}
		printf("%s: %s %s, si_addr %s, rip at the instruction %s, trapno %ld, err %#lx\n",
		       cases[i].name, signal_name(caught_sig), code_name(caught_code),
		       caught_addr ? "set" : "0", yes(caught_rip == (uintptr_t)cases[i].at),
		       (long)caught_trapno, (long)caught_err);
	}
	/* IOPL cannot be raised at CPL3: popf and iretq keep it. */
	uint64_t flags;
	asm volatile("lea -128(%%rsp), %%rsp\n\t"
		     "pushfq\n\torq $0x3000, (%%rsp)\n\tpopfq\n\t"
		     "pushfq\n\tpop %0\n\t"
		     "lea 128(%%rsp), %%rsp" : "=r"(flags) :: "memory", "cc");
	printf("IOPL after popf: %lu\n", (unsigned long)(flags & F_IOPL) >> 12);
	/* syscall overwrites rcx and r11 itself: forged values change nothing. */
	long pid;
	asm volatile("lea -128(%%rsp), %%rsp\n\t"
		     "mov $0x3000 | 0x4000 | 0x200, %%r11\n\t"
		     "mov $0x7fc0000000, %%rcx\n\t"
		     "mov %[nr], %%eax\n\t"
		     "syscall\n\t"
		     "pushfq\n\tpop %[flags]\n\t"
		     "lea 128(%%rsp), %%rsp"
		     : "=a"(pid), [flags] "=r"(flags) : [nr] "i"(SYS_getpid) : "rcx", "r11", "memory", "cc");
	printf("syscall with forged rcx and r11: returned here %s, IOPL %lu NT %d\n", yes(pid == getpid()),
	       (unsigned long)(flags & F_IOPL) >> 12, !!(flags & F_NT));
}


/* A jump to km's landing pad address with a syscall's registers: getpid,
 * return address in rcx, flags with IOPL and NT in r11. Natively nothing
 * is mapped there. */
static void pad(void)
{
	use_altstack(0);
	handle(SIGSEGV, catch_segv, SA_ONSTACK);
	long r;
	uint64_t flags;
	if (sigsetjmp(recover, 1) == 0) {
		asm volatile("lea -128(%%rsp), %%rsp\n\t"
			     "mov %[nr], %%eax\n\t"
			     "lea 1f(%%rip), %%rcx\n\t"
			     "mov $0x7202, %%r11\n\t"
			     "mov $0x7fc0000000, %%rdx\n\t"
			     "jmp *%%rdx\n"
			     "1:\n\t"
			     "pushfq\n\tpop %[flags]\n\t"
			     "lea 128(%%rsp), %%rsp"
			     : "=a"(r), [flags] "=r"(flags)
			     : [nr] "i"(SYS_getpid)
			     : "rcx", "rdx", "r11", "memory", "cc");
		printf("jump into the pad: returned to rcx, getpid %s, IOPL %lu NT %d\n", yes(r == getpid()),
		       (unsigned long)(flags & F_IOPL) >> 12, !!(flags & F_NT));
		return;
	}
	printf("jump into the pad: %s %s, si_addr is the pad %s\n", signal_name(caught_sig),
	       code_name(caught_code), yes(caught_addr == 0x7fc0000000UL));
}


/* ---- a signal for a thread that only reads the vDSO clock ---- */

static volatile int spin_started, spin_stop;

static void stop_spinning(int sig)
{
	(void)sig;
	spin_stop = 1;
}

static void *spin_on_clock(void *arg)
{
	(void)arg;
	struct timespec ts;
	spin_started = 1;
	while (!spin_stop)
		clock_gettime(CLOCK_MONOTONIC, &ts);
	return NULL;
}

/* The spinner makes no syscall (the vDSO serves the clock), so only the
 * kick can make it take the signal, wherever its rip is. */
static void vdso_spin(void)
{
	handle_plain(SIGUSR1, stop_spinning, 0);
	int rounds = 0;
	for (int i = 0; i < 20; i++) {
		pthread_t t;
		spin_started = spin_stop = 0;
		CHECK(pthread_create(&t, NULL, spin_on_clock, NULL) == 0);
		while (!spin_started)
			sched_yield();
		CHECK(pthread_kill(t, SIGUSR1) == 0);
		CHECK(pthread_join(t, NULL) == 0);
		rounds++;
	}
	printf("spinners stopped by a signal: %d\n", rounds);
}


/* ---- loads and stores at the wild addresses ---- */

static void touch(const char *skip)
{
	use_altstack(0);
	handle(SIGSEGV, catch_segv, SA_ONSTACK);
	for (volatile size_t i = 0; i < NWILD; i++) {
		if (skip && strstr(wild[i].name, skip))
			continue;
		for (volatile int write = 0; write < 2; write++) {
			volatile char *p = (volatile char *)wild[i].addr;
			caught_sig = 0;
			if (sigsetjmp(recover, 1) == 0) {
				if (write)
					*p = 1;
				else
					(void)*p;
				printf("%s at %s: no fault\n", write ? "store" : "load", wild[i].name);
				continue;
			}
			printf("%s at %s: %s %s, si_addr %s\n", write ? "store" : "load", wild[i].name,
			       signal_name(caught_sig), code_name(caught_code),
			       caught_addr == wild[i].addr ? "exact" : caught_addr ? "other" : "0");
		}
	}
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (MODE("wild-rsp"))
		wild_rsp();
	else if (MODE("wild-rsp-fatal") && argc > 2)
		wild_rsp_fatal(argv[2]);
	else if (MODE("segv-blocked"))
		segv_blocked();
	else if (MODE("segv-ignored"))
		segv_ignored();
	else if (MODE("segv-own-frame"))
		segv_own_frame();
	else if (MODE("altstack-wild"))
		altstack_wild();
	else if (MODE("altstack-wild-fatal"))
		altstack_wild_fatal();
	else if (MODE("nested-onstack"))
		nested_onstack();
	else if (MODE("autodisarm-nested"))
		autodisarm_nested();
	else if (MODE("sigreturn"))
		sigreturn_edits();
	else if (MODE("tid"))
		tids();
	else if (MODE("ports"))
		ports(argc > 2 ? argv[2] : NULL);
	else if (MODE("pad"))
		pad();
	else if (MODE("touch"))
		touch(argc > 2 ? argv[2] : NULL);
	else if (MODE("vdso-spin"))
		vdso_spin();
	else {
		fprintf(stderr, "usage: hostile-signals MODE\n");
		return 2;
	}
	return 0;
}
