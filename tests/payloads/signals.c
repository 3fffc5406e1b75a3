/* signals MODE [SIGNAL]: signal delivery to handlers, masks and queues.
 *   siginfo      - si_code/si_pid/si_value for kill, raise, tgkill, sigqueue
 *   altstack     - SA_ONSTACK runs on the sigaltstack, others do not
 *   restart      - SA_RESTART: a pipe read interrupted by timer signals and
 *                  by another thread's pthread_kill restarts
 *   eintr        - the same without SA_RESTART: read fails with EINTR
 *   nodefer      - SA_NODEFER lets a handler re-enter; without it the
 *                  second signal waits for the first handler to return
 *   resethand    - SA_RESETHAND: the second SIGUSR1 kills (status 138)
 *   mask         - sa_mask is blocked during the handler, then restored
 *   thread-mask  - a process-directed signal goes to the one thread that
 *                  has it unblocked; a thread-directed one stays pending
 *                  on its (blocking) target until it unblocks
 *   pending      - sigpending, coalescing, delivery on unblock in order
 *   rt-queue     - real-time signals queue with values, in order
 *   fpu          - integer, SSE and x87 state survive handlers that
 *                  clobber them, fired by a 1 ms interval timer
 *   ucontext     - a handler edits RIP, RAX, XMM7 and uc_sigmask in the
 *                  frame and the interrupted code sees the edits
 *   sigsuspend   - returns EINTR after the handler, restores the mask
 *   sigwait      - sigtimedwait timeouts, sigwaitinfo, sigwait
 *   tgkill       - tgkill/tkill to another thread and to self
 *   default SIG  - raise SIG with its default action (dies of it)
 *   ignored      - default-ignored signals, SIG_IGN, blocked-and-ignored
 *   sigpipe-kill - write to a pipe without readers: dies of SIGPIPE
 *   sigpipe-ignored - the same write fails with EPIPE when ignored or
 *                  blocked */
#define _GNU_SOURCE
#include "common.h"

#include <fenv.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

typedef void (*action_fn)(int, siginfo_t *, void *);

/* Installs `fn` for `sig` with `flags` (SA_SIGINFO always) and `mask`
 * blocked during it (NULL: nothing beyond the signal itself). */
static void on(int sig, action_fn fn, int flags, const sigset_t *mask)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	if (mask)
		sa.sa_mask = *mask;
	else
		sigemptyset(&sa.sa_mask);
	CHECK(sigaction(sig, &sa, NULL) == 0);
}

static sigset_t just(int sig)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	return s;
}

static sigset_t everything(void)
{
	sigset_t s;
	sigfillset(&s);
	return s;
}

static void block(int how, int sig)
{
	sigset_t s = just(sig);
	CHECK(sigprocmask(how, &s, NULL) == 0);
}

static sigset_t current_mask(void)
{
	sigset_t s;
	CHECK(sigprocmask(SIG_BLOCK, NULL, &s) == 0);
	return s;
}

static pid_t tid(void)
{
	return syscall(SYS_gettid);
}

static const char *code_name(int code)
{
	switch (code) {
	case SI_USER: return "SI_USER";
	case SI_KERNEL: return "SI_KERNEL";
	case SI_QUEUE: return "SI_QUEUE";
	case SI_TIMER: return "SI_TIMER";
	case SI_TKILL: return "SI_TKILL";
	default: {
		static char buf[32];
		snprintf(buf, sizeof buf, "code%d", code);
		return buf;
	}
	}
}

/* Prints the pending set, lowest signal first. */
static void print_pending(const char *label)
{
	sigset_t p;
	CHECK(sigpending(&p) == 0);
	printf("%s:", label);
	for (int s = 1; s <= SIGRTMAX; s++)
		if (sigismember(&p, s) == 1)
			printf(" %s", signal_name(s));
	printf("\n");
}

/* A record of deliveries, written by handlers and printed afterwards. */
static struct {
	int sig, value;
} log_[16];
static volatile int log_n;

static void log_delivery(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (log_n < 16) {
		log_[log_n].sig = sig;
		log_[log_n].value = si->si_value.sival_int;
		log_n++;
	}
}

static void print_log(const char *label, int values)
{
	printf("%s:", label);
	for (int i = 0; i < log_n; i++) {
		printf(" %s", signal_name(log_[i].sig));
		if (values)
			printf("(%d)", log_[i].value);
	}
	printf("\n");
	log_n = 0;
}

static siginfo_t last_info;
static pid_t last_tid;
static volatile sig_atomic_t hits;

static void record(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	last_info = *si;
	last_tid = tid();
	hits++;
}

static void show_info(const char *how)
{
	printf("%s: %s %s, pid is self: %s, uid is self: %s", how,
	       signal_name(last_info.si_signo), code_name(last_info.si_code),
	       yes(last_info.si_pid == getpid()), yes(last_info.si_uid == getuid()));
	if (last_info.si_code == SI_QUEUE)
		printf(", value %d", last_info.si_value.sival_int);
	printf("\n");
}

static void siginfo(void)
{
	on(SIGUSR1, record, 0, NULL);
	CHECK(kill(getpid(), SIGUSR1) == 0);
	show_info("kill");
	CHECK(raise(SIGUSR1) == 0);
	show_info("raise");
	CHECK(syscall(SYS_tgkill, getpid(), tid(), SIGUSR1) == 0);
	show_info("tgkill");
	CHECK(sigqueue(getpid(), SIGUSR1, (union sigval){.sival_int = 1234}) == 0);
	show_info("sigqueue");
	printf("handler ran %d times\n", (int)hits);
}

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31) /* not in musl's headers */
#endif

static stack_t alt;
static int on_alt, in_use_flag, nested_sigaltstack_errno;

static void where_am_i(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	char local;
	char *lo = alt.ss_sp;
	on_alt = &local >= lo && &local < lo + alt.ss_size;
	stack_t cur;
	CHECK(sigaltstack(NULL, &cur) == 0);
	in_use_flag = (cur.ss_flags & SS_ONSTACK) != 0;
	errno = 0;
	nested_sigaltstack_errno = sigaltstack(&alt, NULL) == 0 ? 0 : errno;
}

static void only_where(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	char local;
	char *lo = alt.ss_sp;
	on_alt = &local >= lo && &local < lo + alt.ss_size;
	stack_t cur;
	CHECK(sigaltstack(NULL, &cur) == 0);
	in_use_flag = cur.ss_flags;
}

static void altstack(void)
{
	alt.ss_size = 64 * 1024;
	alt.ss_sp = malloc(alt.ss_size);
	CHECK(alt.ss_sp != NULL);
	CHECK(sigaltstack(&alt, NULL) == 0);
	on(SIGUSR1, where_am_i, SA_ONSTACK, NULL);
	on(SIGUSR2, where_am_i, 0, NULL);

	raise(SIGUSR1);
	printf("SA_ONSTACK handler on the alternate stack: %s\n", yes(on_alt));
	printf("sigaltstack in the handler says SS_ONSTACK: %s\n", yes(in_use_flag));
	printf("changing it from the handler: %s\n",
	       errno_name(nested_sigaltstack_errno));
	raise(SIGUSR2);
	printf("handler without SA_ONSTACK on the alternate stack: %s\n", yes(on_alt));

	stack_t cur;
	CHECK(sigaltstack(NULL, &cur) == 0);
	printf("afterwards: same stack %s, flags %d\n",
	       yes(cur.ss_sp == alt.ss_sp && cur.ss_size == alt.ss_size),
	       cur.ss_flags);
	/* SS_AUTODISARM: disarmed while the handler runs, armed again by
	 * rt_sigreturn. */
	stack_t autodisarm = alt;
	autodisarm.ss_flags = SS_AUTODISARM;
	CHECK(sigaltstack(&autodisarm, NULL) == 0);
	on(SIGUSR2, only_where, SA_ONSTACK, NULL);
	raise(SIGUSR2);
	printf("SS_AUTODISARM: handler on it %s, disarmed there %s\n",
	       yes(on_alt), yes(in_use_flag == SS_DISABLE));
	CHECK(sigaltstack(NULL, &cur) == 0);
	printf("SS_AUTODISARM: armed again afterwards %s\n",
	       yes(cur.ss_sp == alt.ss_sp && cur.ss_flags == (int)SS_AUTODISARM));

	stack_t off = {.ss_flags = SS_DISABLE};
	CHECK(sigaltstack(&off, NULL) == 0);
	raise(SIGUSR1);
	printf("SA_ONSTACK with the stack disabled on it: %s\n", yes(on_alt));
}

static int rfds[2];
static int writes_after; /* the handler writes to the pipe at this hit */
static pthread_t main_thread;
static volatile int reading, read_done;

static void tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	if (++hits == writes_after)
		CHECK(write(rfds[1], "t", 1) == 1);
}

static void set_ticks(long usec)
{
	struct itimerval it = {{0, usec}, {0, usec}};
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

static void show_read(const char *label)
{
	char c = 0;
	errno = 0;
	long n = read(rfds[0], &c, 1);
	if (n < 0)
		printf("%s: -1 %s\n", label, errno_name(errno));
	else
		printf("%s: %ld '%c'\n", label, n, c);
}

/* Sends SIGUSR1 to main every millisecond while main reads: ten times,
 * then writes, if restarting; else until the read has returned. */
static void *poke(void *arg)
{
	int restart = (int)(intptr_t)arg;
	struct timespec ms = {0, 1000000};
	while (!reading)
		nanosleep(&ms, NULL);
	for (int i = 0; restart ? i < 10 : !read_done; i++) {
		CHECK(pthread_kill(main_thread, SIGUSR1) == 0);
		nanosleep(&ms, NULL);
	}
	if (restart)
		CHECK(write(rfds[1], "p", 1) == 1);
	return NULL;
}

static void restart_or_eintr(int restart)
{
	const char *how = restart ? "with SA_RESTART" : "without SA_RESTART";
	char label[80];
	CHECK(pipe(rfds) == 0);

	on(SIGALRM, tick, restart ? SA_RESTART : 0, NULL);
	writes_after = restart ? 10 : -1;
	set_ticks(1000);
	snprintf(label, sizeof label, "read %s, timer signals", how);
	show_read(label);
	set_ticks(0);
	if (restart)
		printf("timer handler ran at least 10 times: %s\n", yes(hits >= 10));

	on(SIGUSR1, tick, restart ? SA_RESTART : 0, NULL);
	writes_after = -1;
	main_thread = pthread_self();
	pthread_t t;
	CHECK(pthread_create(&t, NULL, poke, (void *)(intptr_t)restart) == 0);
	reading = 1;
	snprintf(label, sizeof label, "read %s, signals from a thread", how);
	show_read(label);
	read_done = 1;
	CHECK(pthread_join(t, NULL) == 0);
}

static char order[16];
static int order_n, entries;

static void reenter(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	order[order_n++] = '[';
	if (++entries == 1)
		raise(sig);
	order[order_n++] = ']';
}

static void nodefer(void)
{
	on(SIGUSR1, reenter, SA_NODEFER, NULL);
	raise(SIGUSR1);
	printf("SA_NODEFER: %.*s\n", order_n, order);
	order_n = entries = 0;
	on(SIGUSR2, reenter, 0, NULL);
	raise(SIGUSR2);
	printf("default: %.*s\n", order_n, order);
}

static void resethand(void)
{
	on(SIGUSR1, record, SA_RESETHAND, NULL);
	raise(SIGUSR1);
	printf("handler ran %d time\n", (int)hits);
	struct sigaction now;
	CHECK(sigaction(SIGUSR1, NULL, &now) == 0);
	printf("disposition reset to SIG_DFL: %s\n", yes(now.sa_handler == SIG_DFL));
	printf("raising SIGUSR1 again\n");
	fflush(stdout);
	raise(SIGUSR1);
	printf("survived\n");
}

static int usr1_blocked, usr2_blocked, usr2_pending, usr2_early;

static void masked(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	sigset_t m = current_mask(), p;
	usr1_blocked = sigismember(&m, SIGUSR1);
	usr2_blocked = sigismember(&m, SIGUSR2);
	raise(SIGUSR2);
	CHECK(sigpending(&p) == 0);
	usr2_pending = sigismember(&p, SIGUSR2);
	usr2_early = hits;
}

static void mask(void)
{
	sigset_t m = just(SIGUSR2);
	on(SIGUSR1, masked, 0, &m);
	on(SIGUSR2, record, 0, NULL);
	raise(SIGUSR1);
	printf("in the handler: SIGUSR1 blocked %s, SIGUSR2 (sa_mask) blocked %s\n",
	       yes(usr1_blocked), yes(usr2_blocked));
	printf("SIGUSR2 raised there: pending %s, handled at once %s\n",
	       yes(usr2_pending), yes(usr2_early));
	m = current_mask();
	printf("after return: SIGUSR2 handled %s, mask restored %s\n",
	       yes(hits == 1 && last_info.si_signo == SIGUSR2),
	       yes(!sigismember(&m, SIGUSR1) && !sigismember(&m, SIGUSR2)));
}

static sem_t ready, go;
static pid_t waiter_tid, blocker_tid;
static int blocker_saw_pending;

static void *waiter(void *arg)
{
	(void)arg;
	waiter_tid = tid();
	sem_post(&ready);
	sigset_t none;
	sigemptyset(&none);
	while (!hits)
		sigsuspend(&none);
	return NULL;
}

static void *blocker(void *arg)
{
	(void)arg;
	blocker_tid = tid();
	sem_post(&ready);
	while (sem_wait(&go) != 0)
		CHECK(errno == EINTR);
	sigset_t p;
	CHECK(sigpending(&p) == 0);
	blocker_saw_pending = sigismember(&p, SIGUSR1);
	block(SIG_UNBLOCK, SIGUSR1);
	return NULL;
}

static void thread_mask(void)
{
	on(SIGUSR1, record, 0, NULL);
	CHECK(sem_init(&ready, 0, 0) == 0 && sem_init(&go, 0, 0) == 0);
	sigset_t m = just(SIGUSR1);
	CHECK(pthread_sigmask(SIG_BLOCK, &m, NULL) == 0);
	pthread_t w, b;
	CHECK(pthread_create(&b, NULL, blocker, NULL) == 0);
	CHECK(pthread_create(&w, NULL, waiter, NULL) == 0);
	sem_wait(&ready);
	sem_wait(&ready);

	CHECK(kill(getpid(), SIGUSR1) == 0);
	CHECK(pthread_join(w, NULL) == 0);
	printf("kill() handled by the thread in sigsuspend: %s\n",
	       yes(hits == 1 && last_tid == waiter_tid));

	CHECK(pthread_kill(b, SIGUSR1) == 0);
	print_pending("pending in main after pthread_kill of the blocker");
	sem_post(&go);
	CHECK(pthread_join(b, NULL) == 0);
	printf("blocker saw it pending: %s, handled it on unblock: %s\n",
	       yes(blocker_saw_pending), yes(hits == 2 && last_tid == blocker_tid));
}

static void pending(void)
{
	sigset_t all = everything();
	on(SIGUSR1, log_delivery, 0, &all);
	on(SIGUSR2, log_delivery, 0, &all);
	sigset_t both = just(SIGUSR1);
	sigaddset(&both, SIGUSR2);
	CHECK(sigprocmask(SIG_BLOCK, &both, NULL) == 0);
	raise(SIGUSR2);
	raise(SIGUSR1);
	raise(SIGUSR1);
	print_pending("pending while blocked");
	printf("delivered while blocked: %d\n", log_n);
	CHECK(sigprocmask(SIG_UNBLOCK, &both, NULL) == 0);
	print_log("delivered on unblock", 0);
	print_pending("pending afterwards");
}

static void rt_queue(void)
{
	sigset_t all = everything();
	int rt1 = SIGRTMIN + 1, rt2 = SIGRTMIN + 2;
	on(SIGUSR1, log_delivery, 0, &all);
	on(rt1, log_delivery, 0, &all);
	on(rt2, log_delivery, 0, &all);
	CHECK(sigprocmask(SIG_BLOCK, &all, NULL) == 0);
	int sends[][2] = {{rt2, 40}, {rt1, 1}, {SIGUSR1, 10}, {rt1, 2},
			  {SIGUSR1, 11}, {rt1, 3}, {SIGUSR1, 12}};
	for (size_t i = 0; i < sizeof sends / sizeof sends[0]; i++)
		CHECK(sigqueue(getpid(), sends[i][0],
			       (union sigval){.sival_int = sends[i][1]}) == 0);
	print_pending("pending");
	CHECK(sigprocmask(SIG_UNBLOCK, &all, NULL) == 0);
	print_log("delivered", 1);
}

/* Interval-timer ticks seen by the FP test; the asm below polls it. */
volatile int fpu_hits;
unsigned long gpr_in[13], gpr_out[13];
unsigned char xmm_in[16][16], xmm_out[16][16];
static int handler_rounding = -1;
static volatile double handler_sink;

static void fp_clobber(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	if (handler_rounding == -1)
		handler_rounding = fegetround();
	double x = fpu_hits;
	long double y = 1.0L / (fpu_hits + 3);
	for (int i = 0; i < 50; i++) {
		x = sqrt(x * x + i) / 1.5;
		y = y * 1.0000001L + x;
	}
	handler_sink = x + (double)y;
	fesetround(FE_UPWARD);
	asm volatile("pcmpeqd %%xmm0, %%xmm0\n\t"
		     "movdqa %%xmm0, %%xmm1\n\tmovdqa %%xmm0, %%xmm2\n\t"
		     "movdqa %%xmm0, %%xmm3\n\tmovdqa %%xmm0, %%xmm4\n\t"
		     "movdqa %%xmm0, %%xmm5\n\tmovdqa %%xmm0, %%xmm6\n\t"
		     "movdqa %%xmm0, %%xmm7\n\tmovdqa %%xmm0, %%xmm8\n\t"
		     "movdqa %%xmm0, %%xmm9\n\tmovdqa %%xmm0, %%xmm10\n\t"
		     "movdqa %%xmm0, %%xmm11\n\tmovdqa %%xmm0, %%xmm12\n\t"
		     "movdqa %%xmm0, %%xmm13\n\tmovdqa %%xmm0, %%xmm14\n\t"
		     "movdqa %%xmm0, %%xmm15\n\t"
		     "fldpi\n\tfldpi\n\tfldpi\n\tfstp %%st(0)\n\tfstp %%st(0)\n\tfstp %%st(0)"
		     ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
		     "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
		     "xmm14", "xmm15", "st");
	fpu_hits++;
}

/* Loads every general register but rsp/rbp/rcx and every xmm register
 * with known values, spins until `target` ticks have passed, stores them. */
static void registers_across_ticks(int target)
{
	for (int i = 0; i < 13; i++)
		gpr_in[i] = 0x0123456789abcdefUL * (i + 3) + i;
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
			xmm_in[i][j] = (unsigned char)(i * 16 + j + 1);
#define XMM(n) "movdqu xmm_in+16*" #n "(%%rip), %%xmm" #n "\n\t"
#define XMM_OUT(n) "movdqu %%xmm" #n ", xmm_out+16*" #n "(%%rip)\n\t"
	asm volatile(
		XMM(0) XMM(1) XMM(2) XMM(3) XMM(4) XMM(5) XMM(6) XMM(7)
		XMM(8) XMM(9) XMM(10) XMM(11) XMM(12) XMM(13) XMM(14) XMM(15)
		"mov gpr_in+0(%%rip), %%rax\n\tmov gpr_in+8(%%rip), %%rbx\n\t"
		"mov gpr_in+16(%%rip), %%rdx\n\tmov gpr_in+24(%%rip), %%rsi\n\t"
		"mov gpr_in+32(%%rip), %%rdi\n\tmov gpr_in+40(%%rip), %%r8\n\t"
		"mov gpr_in+48(%%rip), %%r9\n\tmov gpr_in+56(%%rip), %%r10\n\t"
		"mov gpr_in+64(%%rip), %%r11\n\tmov gpr_in+72(%%rip), %%r12\n\t"
		"mov gpr_in+80(%%rip), %%r13\n\tmov gpr_in+88(%%rip), %%r14\n\t"
		"mov gpr_in+96(%%rip), %%r15\n\t"
		"1: cmp fpu_hits(%%rip), %%ecx\n\t"
		"ja 1b\n\t"
		"mov %%rax, gpr_out+0(%%rip)\n\tmov %%rbx, gpr_out+8(%%rip)\n\t"
		"mov %%rdx, gpr_out+16(%%rip)\n\tmov %%rsi, gpr_out+24(%%rip)\n\t"
		"mov %%rdi, gpr_out+32(%%rip)\n\tmov %%r8, gpr_out+40(%%rip)\n\t"
		"mov %%r9, gpr_out+48(%%rip)\n\tmov %%r10, gpr_out+56(%%rip)\n\t"
		"mov %%r11, gpr_out+64(%%rip)\n\tmov %%r12, gpr_out+72(%%rip)\n\t"
		"mov %%r13, gpr_out+80(%%rip)\n\tmov %%r14, gpr_out+88(%%rip)\n\t"
		"mov %%r15, gpr_out+96(%%rip)\n\t"
		XMM_OUT(0) XMM_OUT(1) XMM_OUT(2) XMM_OUT(3) XMM_OUT(4) XMM_OUT(5)
		XMM_OUT(6) XMM_OUT(7) XMM_OUT(8) XMM_OUT(9) XMM_OUT(10)
		XMM_OUT(11) XMM_OUT(12) XMM_OUT(13) XMM_OUT(14) XMM_OUT(15)
		:
		: "c"(target)
		: "rax", "rbx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
		  "r12", "r13", "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3",
		  "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
		  "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
#undef XMM
#undef XMM_OUT
}

/* Read afresh each time so the compiler cannot compute fp_block once. */
static volatile double fp_seed = 0.5;

/* A floating-point workload whose result depends on every step. */
static double fp_block(void)
{
	double a = fp_seed;
	long double b = 0.25L;
	for (int i = 1; i < 20000; i++) {
		a = a * 1.0000003 + 1.0 / i;
		b = b * 0.9999998L + (long double)a / (i + 7);
	}
	return a + (double)b;
}

static void fpu(void)
{
	CHECK(fesetround(FE_TOWARDZERO) == 0);
	double reference = fp_block();
	on(SIGALRM, fp_clobber, 0, NULL);
	set_ticks(1000);
	int blocks = 0, agree = 1;
	while (fpu_hits < 100) {
		agree &= fp_block() == reference;
		blocks++;
	}
	registers_across_ticks(fpu_hits + 100);
	set_ticks(0);
	printf("FP results agree across ticks: %s\n", yes(agree && blocks > 0));
	printf("general registers intact: %s\n",
	       yes(memcmp(gpr_in, gpr_out, sizeof gpr_in) == 0));
	printf("xmm registers intact: %s\n",
	       yes(memcmp(xmm_in, xmm_out, sizeof xmm_in) == 0));
	printf("handler started with round-to-nearest: %s\n",
	       yes(handler_rounding == FE_TONEAREST));
	printf("rounding mode kept: %s\n", yes(fegetround() == FE_TOWARDZERO));
}

extern char ud2_here[];
static int ill_at_ud2, old_mask_had_usr2, old_mask_had_ill;

static void edit_frame(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	if (sig == SIGILL) {
		ill_at_ud2 = si->si_addr == (void *)ud2_here &&
			     g[REG_RIP] == (greg_t)ud2_here;
		old_mask_had_usr2 = sigismember(&uc->uc_sigmask, SIGUSR2);
		old_mask_had_ill = sigismember(&uc->uc_sigmask, SIGILL);
		g[REG_RIP] += 2;
		g[REG_RAX] = 42;
		uc->uc_mcontext.fpregs->_xmm[7].element[0] = 0x1234;
		sigaddset(&uc->uc_sigmask, SIGHUP);
	} else {
		g[REG_RAX] = 4242;
	}
}

__attribute__((noinline)) static void ucontext_edits(void)
{
	long rax;
	unsigned xmm7;
	asm volatile("pxor %%xmm7, %%xmm7\n\t"
		     "mov $1, %%eax\n\t"
		     ".globl ud2_here\n"
		     "ud2_here: ud2\n\t"
		     "movd %%xmm7, %1"
		     : "=a"(rax), "=r"(xmm7)
		     :
		     : "xmm7");
	printf("SIGILL at the ud2 (si_addr and RIP): %s\n", yes(ill_at_ud2));
	printf("uc_sigmask is the interrupted mask: %s\n",
	       yes(old_mask_had_usr2 && !old_mask_had_ill));
	printf("after the handler: rax %ld, xmm7 %#x\n", rax, xmm7);
	sigset_t m = current_mask();
	printf("SIGHUP added through uc_sigmask is blocked: %s\n",
	       yes(sigismember(&m, SIGHUP)));
}

static void ucontext_mode(void)
{
	on(SIGILL, edit_frame, 0, NULL);
	on(SIGUSR1, edit_frame, 0, NULL);
	block(SIG_BLOCK, SIGUSR2);
	ucontext_edits();
	/* The signal is delivered as tgkill returns, with its result in RAX. */
	long r;
	asm volatile("syscall"
		     : "=a"(r)
		     : "a"(SYS_tgkill), "D"(getpid()), "S"(tid()), "d"(SIGUSR1)
		     : "rcx", "r11", "memory");
	printf("tgkill's result as rewritten by the handler: %ld\n", r);
}

static void *send_later(void *arg)
{
	struct timespec ms = {0, 10000000};
	nanosleep(&ms, NULL);
	CHECK(kill(getpid(), (int)(intptr_t)arg) == 0);
	return NULL;
}

static void sigsuspend_mode(void)
{
	on(SIGUSR1, record, 0, NULL);
	block(SIG_BLOCK, SIGUSR1);
	sigset_t none;
	sigemptyset(&none);

	raise(SIGUSR1);
	errno = 0;
	int r = sigsuspend(&none);
	printf("sigsuspend with SIGUSR1 pending: %d %s, handled %d\n", r,
	       errno_name(errno), (int)hits);

	pthread_t t;
	CHECK(pthread_create(&t, NULL, send_later, (void *)(intptr_t)SIGUSR1) == 0);
	errno = 0;
	r = sigsuspend(&none);
	printf("sigsuspend until another thread's kill: %d %s, handled %d\n", r,
	       errno_name(errno), (int)hits);
	CHECK(pthread_join(t, NULL) == 0);
	sigset_t m = current_mask();
	printf("SIGUSR1 blocked again: %s\n", yes(sigismember(&m, SIGUSR1)));
}

static void sigwait_mode(void)
{
	on(SIGUSR1, record, 0, NULL);
	on(SIGUSR2, record, 0, NULL);
	sigset_t set = just(SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN + 3);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	siginfo_t si;

	struct timespec zero = {0, 0}, short_wait = {0, 20000000};
	SHOW("sigtimedwait, nothing pending, zero timeout", sigtimedwait(&set, &si, &zero));
	SHOW("sigtimedwait, nothing pending, 20 ms", sigtimedwait(&set, &si, &short_wait));

	CHECK(sigqueue(getpid(), SIGUSR1, (union sigval){.sival_int = 7}) == 0);
	int s = sigwaitinfo(&set, &si);
	printf("sigwaitinfo: %s %s value %d\n", signal_name(s), code_name(si.si_code),
	       si.si_value.sival_int);

	pthread_t t;
	CHECK(pthread_create(&t, NULL, send_later, (void *)(intptr_t)SIGUSR2) == 0);
	s = sigwaitinfo(&set, &si);
	printf("sigwaitinfo, sent by a thread later: %s %s\n", signal_name(s),
	       code_name(si.si_code));
	CHECK(pthread_join(t, NULL) == 0);

	CHECK(sigqueue(getpid(), SIGRTMIN + 3, (union sigval){.sival_int = 9}) == 0);
	CHECK(sigwait(&set, &s) == 0);
	printf("sigwait: %s\n", signal_name(s));
	printf("handlers ran: %d\n", (int)hits);
}

static void *tgkill_target(void *arg)
{
	(void)arg;
	block(SIG_BLOCK, SIGUSR1);
	waiter_tid = tid();
	sem_post(&ready);
	sigset_t none;
	sigemptyset(&none);
	while (hits < 2)
		sigsuspend(&none);
	return NULL;
}

static void tgkill_mode(void)
{
	on(SIGUSR1, record, 0, NULL);
	on(SIGUSR2, record, 0, NULL);
	CHECK(sem_init(&ready, 0, 0) == 0);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, tgkill_target, NULL) == 0);
	sem_wait(&ready);
	SHOW("pthread_kill, signal 0", pthread_kill(t, 0));

	CHECK(syscall(SYS_tgkill, getpid(), waiter_tid, SIGUSR1) == 0);
	struct timespec ms = {0, 1000000};
	while (hits < 1) /* a second SIGUSR1 must not merge with the first */
		nanosleep(&ms, NULL);
	printf("tgkill: %s handled by the target: %s\n", code_name(last_info.si_code),
	       yes(last_tid == waiter_tid));
	CHECK(syscall(SYS_tkill, waiter_tid, SIGUSR1) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	printf("tkill: %s handled by the target: %s\n", code_name(last_info.si_code),
	       yes(last_tid == waiter_tid));

	CHECK(syscall(SYS_tgkill, getpid(), tid(), SIGUSR2) == 0);
	printf("tgkill to self handled before it returned: %s\n",
	       yes(hits == 3 && last_tid == tid()));
	SHOW("tgkill to no such thread", syscall(SYS_tgkill, getpid(), INT_MAX, SIGUSR2));
	SHOW("tgkill, wrong signal number", syscall(SYS_tgkill, getpid(), tid(), 65));
}

static void default_action(const char *name)
{
	int sig = signal_number(name);
	printf("raising %s\n", name);
	fflush(stdout);
	raise(sig);
	printf("survived %s\n", name);
}

static void ignored(void)
{
	int dfl_ignored[] = {SIGCHLD, SIGURG, SIGWINCH, SIGCONT};
	for (int i = 0; i < 4; i++) {
		raise(dfl_ignored[i]);
		printf("alive after %s\n", signal_name(dfl_ignored[i]));
	}
	signal(SIGUSR1, SIG_IGN);
	raise(SIGUSR1);
	printf("alive after SIGUSR1 with SIG_IGN\n");

	/* Blocked signals are kept even if ignored: the disposition may change
	 * before they are unblocked. */
	block(SIG_BLOCK, SIGUSR1);
	raise(SIGUSR1);
	print_pending("blocked and ignored");
	block(SIG_UNBLOCK, SIGUSR1);
	print_pending("after unblocking");

	/* Ignoring a pending signal discards it. */
	on(SIGUSR2, record, 0, NULL);
	block(SIG_BLOCK, SIGUSR2);
	raise(SIGUSR2);
	print_pending("blocked with a handler");
	signal(SIGUSR2, SIG_IGN);
	print_pending("after SIG_IGN");
	block(SIG_UNBLOCK, SIGUSR2);
	printf("handler ran: %d\n", (int)hits);
}

static void sigpipe(int ignore)
{
	int p[2];
	CHECK(pipe(p) == 0);
	CHECK(close(p[0]) == 0);
	if (!ignore) {
		printf("writing to a pipe without readers\n");
		fflush(stdout);
		write(p[1], "x", 1);
		printf("survived\n");
		return;
	}
	signal(SIGPIPE, SIG_IGN);
	SHOW("write with SIGPIPE ignored", write(p[1], "x", 1));
	print_pending("pending");
	signal(SIGPIPE, SIG_DFL);
	block(SIG_BLOCK, SIGPIPE);
	SHOW("write with SIGPIPE blocked", write(p[1], "x", 1));
	print_pending("pending");
}

int main(int argc, char **argv)
{
	if (MODE("siginfo"))
		siginfo();
	else if (MODE("altstack"))
		altstack();
	else if (MODE("restart"))
		restart_or_eintr(1);
	else if (MODE("eintr"))
		restart_or_eintr(0);
	else if (MODE("nodefer"))
		nodefer();
	else if (MODE("resethand"))
		resethand();
	else if (MODE("mask"))
		mask();
	else if (MODE("thread-mask"))
		thread_mask();
	else if (MODE("pending"))
		pending();
	else if (MODE("rt-queue"))
		rt_queue();
	else if (MODE("fpu"))
		fpu();
	else if (MODE("ucontext"))
		ucontext_mode();
	else if (MODE("sigsuspend"))
		sigsuspend_mode();
	else if (MODE("sigwait"))
		sigwait_mode();
	else if (MODE("tgkill"))
		tgkill_mode();
	else if (MODE("default") && argc > 2)
		default_action(argv[2]);
	else if (MODE("ignored"))
		ignored();
	else if (MODE("sigpipe-kill"))
		sigpipe(0);
	else if (MODE("sigpipe-ignored"))
		sigpipe(1);
	else {
		fprintf(stderr, "usage: signals siginfo|altstack|restart|eintr|"
				"nodefer|resethand|mask|thread-mask|pending|rt-queue|"
				"fpu|ucontext|sigsuspend|sigwait|tgkill|default SIG|"
				"ignored|sigpipe-kill|sigpipe-ignored\n");
		return 2;
	}
	return 0;
}
