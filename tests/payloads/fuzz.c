/* fuzz SEED CALLS THREADS: a syscall fuzzer for km (run under km only).
 *
 * Makes CALLS random system calls (per thread; THREADS 0 means the main
 * thread alone, N > 0 means N worker threads) with random numbers and
 * arguments mixed with plausible ones: pointers into its own buffers, their
 * guard pages, NULL, kernel and non-canonical addresses, km's monitor area
 * at 511..512 GiB; its own fds, -1, AT_FDCWD, fds near km's floor; sizes
 * and flags of every kind. Between calls it touches bytes of the arena
 * its mapping calls reshape (catching the faults that may cause) and, with
 * one thread, raises signals whose handler fuzzed rt_sigaction calls set
 * to its no-op. It prints "fuzz: seed ..." first and
 * "fuzz: done ..." last, and exits 0: any other end (a signal, a hang) is
 * a failure. The same SEED replays the same calls (exactly so with one
 * thread; with several, their interleaving varies).
 *
 * It runs as root on a shared machine, so it is built to harm nothing
 * outside its scratch directory (the current directory, which must be
 * empty at start):
 * - every byte a pointer argument can reach is in its own buffers, which
 *   are scrubbed of '/' and '.' before each call, so any path it can form
 *   names something inside the current directory; other pointers are
 *   NULL, unmapped, PROT_NONE, kernel or monitor-area addresses;
 * - its fds are only to things it made there, its pipes and the like:
 *   fds 0-2 are replaced by its own, and the real stdout/stderr and the
 *   scratch directory are kept at fds no argument may name;
 * - calls that act on other processes or on the system, that would break
 *   the fuzzer itself (exit, rt_sigreturn, arch_prctl, set_tid_address,
 *   its signals) or that block forever regardless of signals are never
 *   made, and a few are made only with restricted arguments (mapping
 *   calls inside a dedicated arena, fcntl and ioctl commands, prctl
 *   options, signal masks and sets);
 * - RLIMIT_FSIZE is 1 MiB and fallocate is bounded; SIGPIPE and SIGXFSZ
 *   are ignored; a watchdog SIGALRM (no SA_RESTART) every few ms cuts
 *   every blocking call short.
 * It refuses to run outside km unless FUZZ_ALLOW_NATIVE=1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/ucontext.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define GIB (1UL << 30)
#define MIB (1UL << 20)
/* km's guest window and monitor area (km/src/guest/layout.rs). */
#define WINDOW_START (2 * MIB)
#define MONITOR (511 * GIB)
#define WINDOW_END (512 * GIB)
/* km keeps its own fds above a floor near 65536 (km/src/fds.rs). */
#define KM_FLOOR_GUESS 65536

#define DATA_PAGES 4
#define TOP_PAGES 2
#define ARENA_PAGES 64
#define MAX_THREADS 16
#define POOL 24
/* Watchdog period. */
#define TICK_NS (5 * 1000 * 1000)

/* Fds no argument may name: the real stdout and stderr, the scratch dir. */
#define OUT_FD 500
#define ERR_FD 501
#define DIR_FD 502

enum kind {
	EXCLUDED,
	GENERIC,
	MEMORY,  /* address arguments confined to the arena */
	SPECIAL, /* arguments built by special() */
};

struct thread {
	int index;
	pid_t tid;
	uint64_t rng;
	unsigned char *data; /* DATA_PAGES read-write, PROT_NONE page either side */
	unsigned char *top;  /* TOP_PAGES ending a page below 511 GiB (thread 0), or NULL */
	unsigned char *arena;
	/* Crafted objects for the few calls whose arguments must be safe. */
	uint64_t sigset[2];
	struct kaction {
		uint64_t handler, flags, restorer, mask;
	} action;
	int action_sig; /* the signal `action` was last given to */
	stack_t altstack;
	/* A touch of the arena in progress: its faults are expected. */
	volatile int probing;
	sigjmp_buf probe;
	unsigned long probes, probe_faults;
	struct {
		void *set;
		size_t size;
	} pselect_mask;
	struct timespec deadline;
	long pool[POOL]; /* recent fds */
	unsigned npool;
	/* The call in progress, for a report if the thread dies. */
	volatile long nr;
	volatile uint64_t args[6];
	volatile unsigned long count;
	unsigned long calls, ok, failed, enosys, eintr;
	volatile int done;
};

static struct thread threads[MAX_THREADS + 1];
static unsigned long seed;
static int under_km;
/* FUZZ_TRACE=1: every call and its result on stderr. */
static int trace;
static volatile unsigned long ticks;
/* Handlers fuzzed calls install: the no-op below, returning through
 * musl's restorer (learnt at start-up). */
static volatile unsigned long caught;
static uint64_t restorer;
static int single_thread;
static int workers; /* fuzzing threads */

static long sys6(long n, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, uint64_t f)
{
	register uint64_t r10 __asm__("r10") = d;
	register uint64_t r8 __asm__("r8") = e;
	register uint64_t r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

/* Output goes to the saved stdout/stderr with plain writes: fds 0-2 are
 * the fuzzer's own, and a signal handler may report too. */
static void say(int fd, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 1)
		n = sizeof buf - 1;
	for (int off = 0; off < n;) {
		long w = sys6(SYS_write, fd, (uint64_t)buf + off, n - off, 0, 0, 0);
		if (w == -EINTR)
			continue;
		if (w <= 0)
			break;
		off += w;
	}
}

/* Where reports go: stderr until it is moved to ERR_FD. */
static int err_fd = 2;

static void die(const char *fmt, const char *what)
{
	say(err_fd, fmt, what, errno);
	exit(1);
}

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t next(struct thread *t)
{
	uint64_t z = (t->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(struct thread *t, uint64_t n)
{
	return n ? next(t) % n : 0;
}

static int chance(struct thread *t, unsigned percent)
{
	return below(t, 100) < percent;
}

/* ---- what may be called, and how ---- */

static enum kind classify(long nr)
{
	switch (nr) {
	case 9:   /* mmap */
	case 10:  /* mprotect */
	case 11:  /* munmap */
	case 25:  /* mremap */
	case 26:  /* msync */
	case 27:  /* mincore */
	case 28:  /* madvise */
	case 149: /* mlock */
	case 150: /* munlock */
	case 216: /* remap_file_pages */
	case 237: /* mbind */
	case 325: /* mlock2 */
	case 329: /* pkey_mprotect */
	case 450: /* set_mempolicy_home_node */
	case 462: /* mseal */
		return MEMORY;
	case 12:  /* brk: never below the start */
	case 13:  /* rt_sigaction: not the fuzzer's signals */
	case 14:  /* rt_sigprocmask: a crafted set */
	case 16:  /* ioctl: known requests */
	case 33:  /* dup2: the target is filtered like every fd */
	case 72:  /* fcntl: no owners, signals or leases */
	case 109: /* setpgid: itself only */
	case 130: /* rt_sigsuspend: a crafted set */
	case 131: /* sigaltstack: often a usable stack */
	case 157: /* prctl: harmless options */
	case 202: /* futex: PI waits get a deadline */
	case 203: /* sched_setaffinity: itself only */
	case 270: /* pselect6: a crafted mask */
	case 271: /* ppoll: a crafted mask */
	case 281: /* epoll_pwait: a crafted mask */
	case 285: /* fallocate: bounded */
	case 436: /* close_range: never the saved fds */
	case 441: /* epoll_pwait2: a crafted mask */
		return SPECIAL;
	/* Other processes, the system, or the fuzzer's own machinery. */
	case 15:  /* rt_sigreturn */
	case 29:  /* shmget */
	case 30:  /* shmat */
	case 31:  /* shmctl */
	case 37:  /* alarm */
	case 38:  /* setitimer */
	case 41:  /* socket: no network, no netlink */
	case 56:  /* clone */
	case 57:  /* fork */
	case 58:  /* vfork */
	case 59:  /* execve */
	case 60:  /* exit */
	case 62:  /* kill */
	case 64:  /* semget */
	case 65:  /* semop */
	case 66:  /* semctl */
	case 67:  /* shmdt */
	case 68:  /* msgget */
	case 69:  /* msgsnd */
	case 70:  /* msgrcv */
	case 71:  /* msgctl */
	case 101: /* ptrace */
	case 103: /* syslog */
	case 105: /* setuid */
	case 106: /* setgid */
	case 113: /* setreuid */
	case 114: /* setregid */
	case 116: /* setgroups */
	case 117: /* setresuid */
	case 119: /* setresgid */
	case 122: /* setfsuid */
	case 123: /* setfsgid */
	case 126: /* capset */
	case 129: /* rt_sigqueueinfo */
	case 133: /* mknod */
	case 134: /* uselib */
	case 135: /* personality */
	case 141: /* setpriority */
	case 142: /* sched_setparam */
	case 144: /* sched_setscheduler */
	case 151: /* mlockall */
	case 153: /* vhangup */
	case 155: /* pivot_root */
	case 156: /* _sysctl */
	case 158: /* arch_prctl */
	case 159: /* adjtimex */
	case 160: /* setrlimit */
	case 161: /* chroot */
	case 162: /* sync */
	case 163: /* acct */
	case 164: /* settimeofday */
	case 165: /* mount */
	case 166: /* umount2 */
	case 167: /* swapon */
	case 168: /* swapoff */
	case 169: /* reboot */
	case 170: /* sethostname */
	case 171: /* setdomainname */
	case 172: /* iopl */
	case 173: /* ioperm */
	case 175: /* init_module */
	case 176: /* delete_module */
	case 179: /* quotactl */
	case 200: /* tkill */
	case 206: /* io_setup */
	case 207: /* io_destroy */
	case 208: /* io_getevents */
	case 209: /* io_submit: writes memory behind the scrubber's back */
	case 210: /* io_cancel */
	case 218: /* set_tid_address */
	case 220: /* semtimedop */
	case 222: /* timer_create */
	case 223: /* timer_settime */
	case 226: /* timer_delete */
	case 227: /* clock_settime */
	case 231: /* exit_group */
	case 234: /* tgkill */
	case 240: /* mq_open */
	case 241: /* mq_unlink */
	case 242: /* mq_timedsend */
	case 243: /* mq_timedreceive */
	case 244: /* mq_notify */
	case 245: /* mq_getsetattr */
	case 246: /* kexec_load */
	case 248: /* add_key */
	case 249: /* request_key */
	case 250: /* keyctl */
	case 251: /* ioprio_set */
	case 256: /* migrate_pages */
	case 259: /* mknodat */
	case 272: /* unshare */
	case 273: /* set_robust_list */
	case 279: /* move_pages */
	case 297: /* rt_tgsigqueueinfo */
	case 298: /* perf_event_open */
	case 300: /* fanotify_init */
	case 301: /* fanotify_mark */
	case 302: /* prlimit64 */
	case 304: /* open_by_handle_at */
	case 305: /* clock_adjtime */
	case 306: /* syncfs */
	case 308: /* setns */
	case 310: /* process_vm_readv */
	case 311: /* process_vm_writev */
	case 313: /* finit_module */
	case 314: /* sched_setattr */
	case 317: /* seccomp */
	case 320: /* kexec_file_load */
	case 321: /* bpf */
	case 322: /* execveat */
	case 323: /* userfaultfd */
	case 333: /* io_pgetevents */
	case 334: /* rseq: a bad rseq_cs is a SIGSEGV */
	case 424: /* pidfd_send_signal */
	case 425: /* io_uring_setup */
	case 426: /* io_uring_enter */
	case 427: /* io_uring_register */
	case 428: /* open_tree */
	case 429: /* move_mount */
	case 430: /* fsopen */
	case 431: /* fsconfig */
	case 432: /* fsmount */
	case 433: /* fspick */
	case 434: /* pidfd_open */
	case 435: /* clone3 */
	case 438: /* pidfd_getfd */
	case 440: /* process_madvise */
	case 442: /* mount_setattr */
	case 443: /* quotactl_fd */
	case 446: /* landlock_restrict_self */
	case 448: /* process_mrelease */
	case 453: /* map_shadow_stack: may map at any address it is given */
	case 460: /* lsm_set_self_attr */
	case 467: /* open_tree_attr */
		return EXCLUDED;
	default:
		return nr >= 0 && nr <= 466 ? GENERIC : EXCLUDED;
	}
}

/* The calls km serves itself (km/src/syscall/mod.rs), made more often. */
static const short served[] = {
	0, 1, 17, 18, 19, 20, 295, 296, 327, 328, 2, 257, 85, 3, 8, 4, 6, 5, 262, 332, 217, 79, 80, 81, 21,
	269, 439, 89, 267, 87, 263, 83, 258, 84, 82, 264, 316, 88, 266, 86, 265, 90, 91, 268, 92, 94, 93,
	260, 76, 77, 74, 75, 73, 285, 221, 32, 33, 292, 22, 293, 16, 95, 280, 137, 138, 40, 7, 271, 213,
	291, 233, 232, 281, 284, 290, 23, 270, 12, 9, 11, 10, 25, 28, 26, 27, 149, 150, 39, 110, 186, 102,
	107, 104, 108, 118, 120, 115, 111, 121, 124, 63, 99, 97, 98, 204, 24, 157, 318, 202, 274, 228,
	229, 96, 201, 35, 230, 100, 36, 224, 225, 283, 286, 287, 13, 14, 131, 130, 127, 128, 34,
};

/* Argument types of common calls: f fd, p pointer, c path, v iovec
 * array, t timespec, s size, i small count, n number or flags. Others
 * get values of every kind. */
static const char *const signature[468] = {
	[0] = "fps", [1] = "fps", [2] = "cnn", [3] = "f", [4] = "cp", [5] = "fp", [6] = "cp", [7] = "pin",
	[8] = "fnn", [13] = "npps", [14] = "npps", [16] = "fnp", [17] = "fpsn", [18] = "fpsn", [19] = "fvi",
	[20] = "fvi", [21] = "cn", [22] = "p", [23] = "ipppt", [32] = "f", [33] = "ff", [35] = "tp",
	[36] = "np", [40] = "ffps", [42] = "fpn", [44] = "fpsnpn", [45] = "fpsnpp", [46] = "fpn", [47] = "fpn",
	[49] = "fpn", [53] = "nnnp", [54] = "fnnps", [55] = "fnnpp", [61] = "npnp", [63] = "p", [72] = "fnn",
	[73] = "fn", [74] = "f", [75] = "f", [76] = "cs", [77] = "fs", [79] = "ps", [80] = "c", [81] = "f",
	[82] = "cc", [83] = "cn", [84] = "c", [85] = "cn", [86] = "cc", [87] = "c", [88] = "cc", [89] = "cps",
	[90] = "cn", [91] = "fn", [92] = "cnn", [93] = "fnn", [94] = "cnn", [95] = "n", [96] = "pp",
	[97] = "np", [98] = "np", [99] = "p", [100] = "p", [115] = "ip", [118] = "ppp", [120] = "ppp",
	[127] = "ps", [128] = "ppts", [130] = "ps", [131] = "pp", [137] = "cp", [138] = "fp", [188] = "ccpsn",
	[191] = "ccps", [194] = "cps", [197] = "cc", [201] = "p", [202] = "pnntpn", [204] = "nsp",
	[217] = "fps", [221] = "fssn", [224] = "np", [228] = "np", [229] = "np", [230] = "nntp", [232] = "fpin",
	[233] = "fnfp", [254] = "fcn", [257] = "fcnn", [258] = "fcn", [260] = "fcnnn", [262] = "fcpn",
	[263] = "fcn", [264] = "fcfc", [265] = "fcfcn", [266] = "cfc", [267] = "fcps", [268] = "fcnn",
	[269] = "fcnn", [270] = "ipppt", [271] = "pitps", [274] = "npp", [275] = "fpfpsn", [276] = "ffsn",
	[278] = "fvin", [280] = "fcpn", [281] = "fpinps", [284] = "n", [285] = "fnss", [286] = "fntp",
	[287] = "fp", [290] = "nn", [292] = "ffn", [293] = "pn", [295] = "fvinn", [296] = "fvinn",
	[316] = "fcfcn", [318] = "psn", [319] = "cn", [326] = "fpfpsn", [327] = "fvinnn", [328] = "fvinnn",
	[332] = "fcnnp", [436] = "ffn", [437] = "fcps", [439] = "fcnn",
};

static long pick_nr(struct thread *t)
{
	for (;;) {
		uint64_t r = below(t, 100);
		long nr;
		if (r < 3) {
			/* Out of range: never a real call even if the kernel
			 * read only the low 32 bits (x32 numbers avoided). */
			static const uint64_t odd[] = {
				-1ULL, -2ULL, 0x80000000ULL, 0xffffffffULL, 1024, 4096, 0x3fffffffULL,
				0x40001000ULL, 0xdeadbeef00001000ULL, 0x7fffffffffffffffULL, 0x8000000000000000ULL,
			};
			return odd[below(t, sizeof odd / sizeof odd[0])];
		}
		if (r < 60)
			nr = served[below(t, sizeof served / sizeof served[0])];
		else
			nr = below(t, 468);
		if (classify(nr) != EXCLUDED)
			return nr;
	}
}

/* ---- values ---- */

static unsigned char *data_end(struct thread *t)
{
	return t->data + DATA_PAGES * PAGE;
}

static unsigned char *top_end(struct thread *t)
{
	return t->top + TOP_PAGES * PAGE;
}

/* May `v` be given to the kernel as an argument (it may be read as a
 * pointer)? Yes unless it points into memory with unscrubbed bytes or
 * that the fuzzer needs: its code, data, stacks, arena, other threads'
 * buffers, mappings made by fuzzed calls. Those are all at or above
 * 2 MiB, and below the monitor area; the own buffers are allowed. */
static int safe_value(struct thread *t, uint64_t v)
{
	if (v < WINDOW_START || v >= MONITOR)
		return v >= WINDOW_END + MIB && v < (1ULL << 47) ? 0 : 1;
	if (v >= (uint64_t)t->data - PAGE && v < (uint64_t)data_end(t) + PAGE)
		return 1;
	if (t->top && v >= (uint64_t)t->top - PAGE && v < (uint64_t)top_end(t))
		return 1;
	return 0;
}

static int protected_fd(uint64_t v)
{
	int fd = (int)v;
	return fd == OUT_FD || fd == ERR_FD || fd == DIR_FD;
}

static uint64_t filter(struct thread *t, uint64_t v)
{
	if (!safe_value(t, v))
		v = chance(t, 50) ? (v & (WINDOW_START - 1)) : (v | (1ULL << 63));
	if (protected_fd(v))
		v = -1ULL;
	return v;
}

static uint64_t pointer(struct thread *t)
{
	static const uint64_t fixed[] = {
		0, 1, 8, 0xfff, 0x1000, 0xffff, WINDOW_START - 8, WINDOW_START - 1,
		0x0000800000000000ULL, 0x8000000000000000ULL, 0xffff800000000000ULL,
		0xffffffff81000000ULL, 0xffffffffff600000ULL, -4096ULL, -8ULL, -1ULL,
		/* km's monitor area: code, GDT, IDT, TSS, IST, vvar, vDSO,
		 * signal scratch, page tables, its end, the window's end. */
		MONITOR, MONITOR + 0x1000, MONITOR + 0x2000, MONITOR + 0x4000, MONITOR + 0x5000,
		MONITOR + 2 * MIB, MONITOR + 4 * MIB, MONITOR + 4 * MIB + PAGE, MONITOR + 6 * MIB,
		MONITOR + 8 * MIB, MONITOR + 256 * MIB - 8, MONITOR + 256 * MIB, WINDOW_END - 2 * MIB,
		WINDOW_END - 8, WINDOW_END, WINDOW_END + 0x1000, MONITOR - 8, MONITOR - 1,
	};
	uint64_t r = below(t, 100);
	if (r < 15)
		return fixed[below(t, sizeof fixed / sizeof fixed[0])];
	if (r < 20)
		return MONITOR + below(t, GIB);
	unsigned char *base = t->data, *end = data_end(t);
	if (t->top && chance(t, 25)) {
		base = t->top;
		end = top_end(t);
	}
	uint64_t len = end - base;
	switch (below(t, 8)) {
	case 0: /* anywhere */
		return (uint64_t)base + below(t, len);
	case 1: /* aligned */
		return (uint64_t)base + (below(t, len) & ~7UL);
	case 2: /* page-aligned */
		return (uint64_t)base + (below(t, len) & ~(PAGE - 1));
	case 3: /* near the end */
		return (uint64_t)end - 1 - below(t, 64);
	case 4: /* the last bytes, wide objects straddle the end */
		return (uint64_t)end - (1UL << below(t, 13));
	case 5: /* the guard page before */
		return (uint64_t)base - 1 - below(t, PAGE);
	case 6: /* the start */
		return (uint64_t)base + below(t, 16);
	default:
		return (uint64_t)base + (below(t, 64) << 6);
	}
}

static uint64_t fd(struct thread *t)
{
	uint64_t r = below(t, 100);
	if (r < 55 && t->npool)
		return t->pool[below(t, t->npool < POOL ? t->npool : POOL)];
	if (r < 65)
		return below(t, 3);
	if (r < 70)
		return -1ULL;
	if (r < 75)
		return (uint64_t)(int64_t)AT_FDCWD;
	if (r < 85)
		return below(t, 64);
	if (r < 92) /* km's own fds, if the floor is where it usually is */
		return KM_FLOOR_GUESS - 2 + below(t, 604);
	if (r < 97)
		return 1000 + below(t, 69000);
	return next(t);
}

static uint64_t size(struct thread *t)
{
	static const uint64_t sizes[] = {
		0, 1, 2, 4, 7, 8, 16, 24, 31, 64, 100, 128, 255, 256, 511, 1024, 4095, 4096, 4097,
		8192, 16384, 65535, 65536, 1 << 20, 0x7ffff000, 0x7fffffff, 0x80000000ULL, 1ULL << 32,
		1ULL << 47, 1ULL << 62, 1ULL << 63, -4096ULL, -1ULL,
	};
	return sizes[below(t, sizeof sizes / sizeof sizes[0])];
}

static uint64_t flags(struct thread *t)
{
	switch (below(t, 6)) {
	case 0:
		return 0;
	case 1:
		return 1ULL << below(t, 32);
	case 2:
		return (uint32_t)next(t);
	case 3:
		return 0xffffffff;
	case 4:
		return -1ULL;
	default:
		return next(t) & next(t) & 0xffffff;
	}
}

static uint64_t value(struct thread *t)
{
	uint64_t r = below(t, 100);
	if (r < 25)
		return pointer(t);
	if (r < 40)
		return fd(t);
	if (r < 55)
		return below(t, 65);
	if (r < 65)
		return size(t);
	if (r < 75)
		return flags(t);
	if (r < 83)
		return next(t);
	if (r < 88)
		return -1 - below(t, 20);
	if (r < 93)
		return (uint32_t)next(t);
	if (r < 97 && t->npool)
		return t->pool[below(t, t->npool < POOL ? t->npool : POOL)];
	return (uint64_t)t->data + (below(t, DATA_PAGES) * PAGE);
}

/* ---- the fuzzer's own memory ---- */

static const char *const names[] = {"f0", "f1", "d0", "d1", "l0", "s0", "x", "fifo", "sock", "lnk"};

/* A place in the data buffer with room for `len` bytes. */
static unsigned char *room(struct thread *t, size_t len)
{
	return t->data + below(t, DATA_PAGES * PAGE - len + 1);
}

/* A path in the data buffer: a known name, or a short random one. */
static uint64_t path(struct thread *t)
{
	if (chance(t, 15))
		return pointer(t);
	unsigned char *p = room(t, 16);
	if (chance(t, 70)) {
		const char *name = names[below(t, sizeof names / sizeof names[0])];
		memcpy(p, name, strlen(name) + 1);
	} else {
		unsigned n = below(t, 9);
		for (unsigned i = 0; i < n; i++)
			p[i] = "abcdefghijklmnopqrstuvwxyz0123456789_-"[below(t, 38)];
		p[n] = 0;
	}
	return (uint64_t)p;
}


/* An iovec array of 1-4 entries over the data buffer. */
static uint64_t iovecs(struct thread *t)
{
	if (chance(t, 15))
		return pointer(t);
	uint64_t *v = (uint64_t *)room(t, 64);
	for (int i = 0; i < 4; i++) {
		uint64_t base = pointer(t), len = chance(t, 80) ? below(t, 512) : size(t);
		if (filter(t, base) != base)
			base = 0;
		memcpy(v + 2 * i, &base, 8);
		memcpy(v + 2 * i + 1, &len, 8);
	}
	return (uint64_t)v;
}

/* A timespec: short, zero, or invalid. */
static uint64_t timespec(struct thread *t)
{
	if (chance(t, 20))
		return chance(t, 50) ? 0 : pointer(t);
	int64_t *ts = (int64_t *)room(t, 16);
	ts[0] = chance(t, 90) ? 0 : (int64_t)next(t);
	ts[1] = chance(t, 90) ? (int64_t)below(t, 3 * 1000 * 1000) : (int64_t)next(t);
	return (uint64_t)ts;
}

static uint64_t typed(struct thread *t, char type)
{
	if (chance(t, 10))
		return value(t);
	switch (type) {
	case 'f':
		return fd(t);
	case 'p':
		return chance(t, 80) ? (uint64_t)room(t, 8) + (chance(t, 50) ? 0 : below(t, 8)) : pointer(t);
	case 'c':
		return path(t);
	case 'v':
		return iovecs(t);
	case 't':
		return timespec(t);
	case 's':
		return chance(t, 50) ? below(t, 4097) : size(t);
	case 'i':
		return below(t, 9);
	default:
		return chance(t, 50) ? flags(t) : value(t);
	}
}

/* Arguments by the call's signature, each checked by the filter. */
static void arguments(struct thread *t, long nr, uint64_t *a)
{
	const char *sig = nr >= 0 && nr < 468 ? signature[nr] : NULL;
	for (int i = 0; i < 6; i++)
		a[i] = filter(t, sig && i < (int)strlen(sig) ? typed(t, sig[i]) : value(t));
}

/* Plants plausible values in the buffers, so that structures read from
 * them (iovecs, msghdrs, sigactions, timespecs, paths) are sometimes
 * meaningful. A value with a '/' or '.' byte is skipped: the scrubber
 * would change it into some other pointer. */
static void seed_buffers(struct thread *t)
{
	unsigned n = below(t, 6);
	for (unsigned i = 0; i < n; i++) {
		unsigned char *base = t->data;
		uint64_t len = DATA_PAGES * PAGE;
		if (t->top && chance(t, 20)) {
			base = t->top;
			len = TOP_PAGES * PAGE;
		}
		uint64_t off = below(t, len - 24) & ~(chance(t, 80) ? 7UL : 0);
		if (chance(t, 25)) {
			const char *name = names[below(t, sizeof names / sizeof names[0])];
			memcpy(base + off, name, strlen(name) + 1);
			continue;
		}
		uint64_t v[2];
		v[0] = chance(t, 50) ? pointer(t) : value(t);
		v[1] = chance(t, 50) ? below(t, 4097) : value(t);
		for (int k = 0; k < 2; k++) {
			v[k] = filter(t, v[k]);
			for (int b = 0; b < 8; b++) {
				unsigned char c = v[k] >> (8 * b);
				if (c == '/' || c == '.')
					goto skip;
			}
		}
		memcpy(base + off, v, chance(t, 50) ? 16 : 8);
skip:;
	}
}

static void scrub_range(unsigned char *p, size_t len)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t *w = (uint64_t *)p;
	for (size_t i = 0; i < len / 8; i++) {
		uint64_t x = w[i];
		uint64_t a = x ^ (ones * '/'), b = x ^ (ones * '.');
		if (!(((a - ones) & ~a & highs) | ((b - ones) & ~b & highs)))
			continue;
		unsigned char *c = (unsigned char *)&w[i];
		for (int k = 0; k < 8; k++)
			if (c[k] == '/' || c[k] == '.')
				c[k] = 'Z';
	}
}

/* No path can hold '/' or '.'. */
static void scrub(struct thread *t)
{
	scrub_range(t->data, DATA_PAGES * PAGE);
	if (t->top)
		scrub_range(t->top, TOP_PAGES * PAGE);
}

/* ---- arguments ---- */

/* An address range for a mapping call: inside the arena, or one that can
 * only fail or touch nothing (NULL below 64 KiB, the monitor area under
 * km, kernel and non-canonical addresses). `maps`: the range may get a
 * new mapping. */
static void memory_range(struct thread *t, uint64_t *addr, uint64_t *len, int maps)
{
	uint64_t r = below(t, 100);
	uint64_t arena = (uint64_t)t->arena, end = arena + ARENA_PAGES * PAGE;
	if (r < 80) {
		uint64_t a = arena + below(t, ARENA_PAGES) * PAGE;
		if (chance(t, 10))
			a += 1 + below(t, PAGE - 1);
		uint64_t room = end - a;
		switch (below(t, 4)) {
		case 0:
			*len = below(t, room + 1);
			break;
		case 1:
			*len = room;
			break;
		default:
			*len = (1 + below(t, (room + PAGE - 1) / PAGE)) * PAGE;
			if (*len > room)
				*len = room;
		}
		*addr = a;
		return;
	}
	/* Natively root may map page 0: only km must refuse. */
	if (r < 85 && (under_km || !maps)) {
		*addr = 0;
		*len = below(t, 0x10000);
		return;
	}
	if (r < 92 && under_km) {
		*addr = MONITOR + (below(t, 300 * MIB) & ~(chance(t, 90) ? PAGE - 1 : 0));
		*len = below(t, 2) ? below(t, 64 * MIB) : (1 + below(t, 16)) * PAGE;
		return;
	}
	static const uint64_t bad[] = {
		0x0000800000000000ULL, 0xffff800000000000ULL, 0xffffffffff600000ULL, -4096ULL, 1ULL << 63,
	};
	*addr = bad[below(t, sizeof bad / sizeof bad[0])] + (chance(t, 30) ? below(t, PAGE) : 0);
	*len = chance(t, 50) ? size(t) : next(t);
}

static void memory(struct thread *t, long nr, uint64_t *a)
{
	arguments(t, nr, a);
	switch (nr) {
	case 9: { /* mmap */
		uint64_t f = chance(t, 70) ? (chance(t, 50) ? MAP_PRIVATE : MAP_SHARED) : (flags(t) & 0x3ffff);
		if (chance(t, 60))
			f |= MAP_ANONYMOUS;
		if (chance(t, 30))
			f |= MAP_FIXED;
		else if (chance(t, 10))
			f |= MAP_FIXED_NOREPLACE;
		a[2] = chance(t, 80) ? below(t, 8) : flags(t);
		a[3] = f;
		a[5] = chance(t, 80) ? below(t, 4) * PAGE : size(t);
		if (f & (MAP_FIXED | MAP_FIXED_NOREPLACE) || chance(t, 50)) {
			memory_range(t, &a[0], &a[1], 1);
		} else {
			/* Not fixed, no hint: anywhere the kernel (or km) likes. */
			a[0] = 0;
			a[1] = chance(t, 80) ? 1 + below(t, 64 * PAGE) : size(t);
		}
		/* Populated or locked memory is real memory: keep it small. */
		if (f & (MAP_POPULATE | MAP_LOCKED) && a[1] > MIB)
			a[1] = MIB;
		/* Lazily allocated, never touched; still, not too much. */
		if (a[1] > GIB && a[1] < (1ULL << 47))
			a[1] = GIB;
		break;
	}
	case 25: /* mremap */
		memory_range(t, &a[0], &a[1], 0);
		a[2] = chance(t, 80) ? below(t, 32) * PAGE + below(t, 2) : (1ULL << 47) + size(t);
		a[3] = chance(t, 70) ? below(t, 8) : flags(t);
		if (a[3] & MREMAP_FIXED) {
			uint64_t len;
			memory_range(t, &a[4], &len, 1);
			if (a[2] > len)
				a[2] = len;
		}
		break;
	case 216: /* remap_file_pages(addr, size, prot, pgoff, flags) */
	case 237: /* mbind(addr, len, mode, nodemask, maxnode, flags) */
	case 450: /* set_mempolicy_home_node(addr, len, node, flags) */
	case 462: /* mseal(addr, len, flags) */
	case 10:  /* mprotect(addr, len, prot) */
	case 329: /* pkey_mprotect(addr, len, prot, pkey) */
		memory_range(t, &a[0], &a[1], nr == 216);
		if (nr == 10 || nr == 329)
			a[2] = chance(t, 85) ? below(t, 8) : flags(t);
		break;
	case 28: /* madvise(addr, len, advice) */
		memory_range(t, &a[0], &a[1], 0);
		a[2] = chance(t, 85) ? below(t, 26) : flags(t);
		break;
	default: /* munmap, msync, mincore, mlock, munlock, mlock2 */
		memory_range(t, &a[0], &a[1], 0);
		break;
	}
}

static void noop(int sig)
{
	(void)sig;
	caught++;
}

static int fuzzer_signal(long s)
{
	switch (s) {
	case SIGALRM:
	case SIGPIPE:
	case SIGXFSZ:
	case SIGSEGV:
	case SIGBUS:
	case SIGILL:
	case SIGFPE:
	case SIGTRAP:
	case SIGSYS:
	case SIGABRT:
	case SIGTERM: /* so that a kill from outside ends it as usual */
	case SIGINT:
	case SIGHUP:
	case SIGQUIT:
	case 32: /* musl's internal signals */
	case 33:
	case 34:
		return 1;
	}
	return 0;
}

/* A signal set for a mask argument: random, but never blocking what the
 * fuzzer relies on. */
static uint64_t crafted_set(struct thread *t)
{
	uint64_t r = below(t, 100);
	if (r < 10)
		return 0;
	if (r < 20)
		return (uint64_t)t->data - 8; /* straddles the guard page */
	if (r < 25)
		return pointer(t) | (1ULL << 63);
	uint64_t set = chance(t, 50) ? next(t) : flags(t);
	for (int s = 1; s <= 64; s++)
		if (fuzzer_signal(s))
			set &= ~(1ULL << (s - 1));
	t->sigset[0] = set;
	t->sigset[1] = next(t);
	return (uint64_t)t->sigset;
}

static uint64_t mask_size(struct thread *t)
{
	return chance(t, 85) ? 8 : size(t);
}

static void special(struct thread *t, long nr, uint64_t *a)
{
	arguments(t, nr, a);
	switch (nr) {
	case 12: { /* brk: 0, a little above the start, or far off */
		static uint64_t start;
		if (!start)
			start = sys6(SYS_brk, 0, 0, 0, 0, 0, 0);
		uint64_t r = below(t, 3);
		a[0] = r == 0 ? 0 : r == 1 ? start + below(t, 16 * MIB) : (next(t) | (1ULL << 63));
		break;
	}
	case 13: /* rt_sigaction */
		if (chance(t, 80))
			a[0] = 1 + below(t, 64);
		while (fuzzer_signal((int)a[0]))
			a[0] = chance(t, 80) ? 1 + below(t, 64) : next(t);
		if (chance(t, 70))
			a[3] = mask_size(t);
		if (restorer && chance(t, 40)) {
			/* A real handler, so that raised signals run it. */
			static const uint64_t extra[] = {SA_SIGINFO, SA_NODEFER, SA_RESETHAND, SA_RESTART, SA_ONSTACK};
			uint64_t h = below(t, 4);
			t->action.handler = h == 0 ? (uint64_t)SIG_DFL : h == 1 ? (uint64_t)SIG_IGN : (uint64_t)noop;
			t->action.flags = SA_RESTORER;
			for (unsigned i = 0; i < sizeof extra / sizeof extra[0]; i++)
				if (chance(t, 40))
					t->action.flags |= extra[i];
			t->action.restorer = restorer;
			t->action.mask = chance(t, 50) ? 0 : next(t);
			a[1] = (uint64_t)&t->action;
			a[3] = 8;
			t->action_sig = (int)a[0];
		}
		break;
	case 14: /* rt_sigprocmask(how, set, old, size) */
		a[0] = chance(t, 80) ? below(t, 3) : a[0];
		a[1] = crafted_set(t);
		a[3] = mask_size(t);
		break;
	case 131: /* sigaltstack(new, old) */
		if (chance(t, 50)) {
			static const int ss_flags[] = {0, 0, SS_AUTODISARM, SS_DISABLE};
			t->altstack.ss_size = 8192 + below(t, DATA_PAGES * PAGE - 8192);
			t->altstack.ss_sp = t->data + below(t, DATA_PAGES * PAGE - t->altstack.ss_size + 1);
			t->altstack.ss_flags = ss_flags[below(t, 4)];
			a[0] = (uint64_t)&t->altstack;
		}
		break;
	case 130: /* rt_sigsuspend(set, size) */
		a[0] = crafted_set(t);
		a[1] = mask_size(t);
		break;
	case 271: /* ppoll(fds, n, timeout, mask, size) */
	case 281: /* epoll_pwait(epfd, events, max, timeout, mask, size) */
	case 441: /* epoll_pwait2 */
		a[nr == 271 ? 3 : 4] = crafted_set(t);
		a[nr == 271 ? 4 : 5] = mask_size(t);
		if (nr == 271 && chance(t, 70))
			a[1] = below(t, 8);
		break;
	case 270: /* pselect6(n, in, out, ex, timeout, {mask, size}) */
		if (chance(t, 80)) {
			t->pselect_mask.set = (void *)crafted_set(t);
			t->pselect_mask.size = mask_size(t);
			a[5] = (uint64_t)&t->pselect_mask;
		} else if (chance(t, 50)) {
			a[5] = 0;
		}
		if (chance(t, 70))
			a[0] = below(t, 70);
		break;
	case 16: { /* ioctl: requests km knows, or ones no file here has */
		static const uint64_t requests[] = {
			0x5401, 0x5402, 0x5403, 0x5404, 0x802c542a, 0x402c542b, 0x5413, 0x5414,
			0x540f, 0x5410, 0x5429, 0x541b, 0x5421, 0x5411, 0x80045430, 0x5451, 0x5450,
			0x5409, 0x540a, 0x540b,
		};
		a[1] = chance(t, 85) ? requests[below(t, sizeof requests / sizeof requests[0])]
				     : ((next(t) & 0xc0ff00ffULL) | 0xfe00);
		break;
	}
	case 33: /* dup2: the filter already keeps the saved fds out */
		break;
	case 72: { /* fcntl: no F_SETOWN(_EX), F_SETSIG, F_SETLEASE, F_NOTIFY */
		static const uint64_t cmds[] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 14, 16, 36, 37, 38,
						1025, 1030, 1031, 1032, 1033, 1034, 1035, 1036, 1037, 1038};
		a[1] = cmds[below(t, sizeof cmds / sizeof cmds[0])];
		break;
	}
	case 109: /* setpgid */
		a[0] = 0;
		a[1] = chance(t, 50) ? 0 : a[1];
		break;
	case 157: { /* prctl: getters and harmless setters */
		static const uint64_t options[] = {
			1 /* SET_PDEATHSIG */, 2 /* GET_PDEATHSIG */, 3 /* GET_DUMPABLE */, 4 /* SET_DUMPABLE */,
			15 /* SET_NAME */, 16 /* GET_NAME */, 21 /* GET_SECCOMP */, 29 /* SET_TIMERSLACK */,
			30 /* GET_TIMERSLACK */, 38 /* SET_NO_NEW_PRIVS */, 39 /* GET_NO_NEW_PRIVS */,
			42 /* GET_THP_DISABLE */, 0, 1000, 0x59616d61 /* SET_PTRACER */,
		};
		a[0] = options[below(t, sizeof options / sizeof options[0])];
		if (a[0] == 0x59616d61)
			a[1] = 0; /* no other process may ptrace it */
		break;
	}
	case 202: { /* futex: PI waits restart after signals, so get a deadline */
		uint64_t op = chance(t, 80) ? below(t, 14) | (chance(t, 50) ? 128 : 0) : a[1];
		a[1] = op;
		a[0] = chance(t, 80) ? pointer(t) : a[0];
		a[4] = chance(t, 80) ? pointer(t) : a[4];
		switch (op & 127) {
		case 6:  /* LOCK_PI: absolute CLOCK_REALTIME */
		case 11: /* WAIT_REQUEUE_PI */
		case 13: /* LOCK_PI2 */ {
			int clock = (op & 127) == 6 || (op & 256) ? CLOCK_REALTIME : CLOCK_MONOTONIC;
			clock_gettime(clock, &t->deadline);
			t->deadline.tv_nsec += below(t, 20 * 1000 * 1000);
			if (t->deadline.tv_nsec >= 1000000000) {
				t->deadline.tv_sec++;
				t->deadline.tv_nsec -= 1000000000;
			}
			a[3] = (uint64_t)&t->deadline;
			break;
		}
		}
		break;
	}
	case 203: /* sched_setaffinity */
		a[0] = 0;
		break;
	case 285: /* fallocate(fd, mode, offset, len): a few hundred KiB */
		a[2] = below(t, 256 * 1024);
		a[3] = below(t, 256 * 1024);
		break;
	case 436: /* close_range(first, last, flags) */
		if ((uint32_t)a[0] <= DIR_FD && (uint32_t)a[1] >= OUT_FD)
			a[0] = DIR_FD + 1 + below(t, 70000);
		break;
	}
}

/* Do two ints at `p` lie in [start, end)? */
static int in(unsigned char *start, unsigned char *end, int *p)
{
	return (unsigned char *)p >= start && (unsigned char *)(p + 2) <= end;
}

/* Does a successful call `nr` return a new fd? */
static int makes_fd(long nr, const uint64_t *a)
{
	switch (nr) {
	case 2: case 32: case 33: case 43: case 85: case 213: case 253: case 257: case 282: case 283:
	case 284: case 288: case 289: case 290: case 291: case 292: case 294: case 319: case 437:
		return 1;
	case 72:
		return a[1] == F_DUPFD || a[1] == F_DUPFD_CLOEXEC;
	}
	return 0;
}

static void remember(struct thread *t, long v)
{
	t->pool[t->npool++ % POOL] = v;
}

/* ---- the loop ---- */

/* Sends the thread a signal whose handler is known to be the fuzzer's
 * no-op (or that is ignored), so that km delivers signals in every state
 * fuzzed calls leave behind. Only with one thread: another could change
 * the disposition between the check and the delivery. */
static void raise_safe(struct thread *t)
{
	int sig = t->action_sig > 0 && chance(t, 70) ? t->action_sig : 1 + (int)below(t, 64);
	struct kaction old;
	uint64_t mask;
	if (fuzzer_signal(sig) || sig == SIGKILL || sig == SIGSTOP)
		return;
	if (sys6(SYS_rt_sigaction, sig, 0, (uint64_t)&old, 8, 0, 0) ||
	    sys6(SYS_rt_sigprocmask, SIG_BLOCK, 0, (uint64_t)&mask, 8, 0, 0))
		return;
	/* Blocked, it would stay pending while fuzzed calls change its
	 * handler to anything. */
	if (mask & (1ULL << (sig - 1)))
		return;
	int ok = old.handler == (uint64_t)SIG_IGN ||
		 (old.handler == (uint64_t)noop && old.restorer == restorer && old.flags & SA_RESTORER);
	if (ok && old.handler == (uint64_t)noop && old.flags & SA_ONSTACK) {
		/* The frame goes on the alternate stack if one is set: it must
		 * be room in the data buffer, or Linux would kill with SIGSEGV. */
		stack_t ss;
		if (sys6(SYS_sigaltstack, 0, (uint64_t)&ss, 0, 0, 0, 0))
			return;
		if (!(ss.ss_flags & SS_DISABLE) &&
		    (ss.ss_flags & SS_ONSTACK || ss.ss_size < 8192 || (unsigned char *)ss.ss_sp < t->data ||
		     (unsigned char *)ss.ss_sp + ss.ss_size > data_end(t)))
			return;
	}
	if (old.handler == (uint64_t)SIG_DFL)
		ok = sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT;
	if (ok)
		sys6(SYS_tgkill, getpid(), t->tid, sig, 0, 0, 0);
}

/* Reads or writes a byte of the arena, whatever fuzzed calls made of it
 * (unmapped, PROT_NONE, a file past its end): a fault is expected then,
 * and exercises km's fault delivery. */
static void touch_arena(struct thread *t)
{
	/* With threads, often another's arena: its mapping calls race the
	 * touch, as km's address-space changes race other vCPUs. */
	struct thread *owner = workers > 1 && chance(t, 50) ? &threads[below(t, workers)] : t;
	volatile unsigned char *p = owner->arena + below(t, ARENA_PAGES * PAGE);
	int write = chance(t, 30);
	t->probes++;
	if (trace)
		say(ERR_FD, "fuzz: %d touches %p (arena %p)%s\n", t->index, (void *)p, owner->arena,
		    write ? ", writing" : "");
	if (sigsetjmp(t->probe, 1)) {
		t->probe_faults++;
		return;
	}
	t->probing = 1;
	if (write)
		*p = *p + 1;
	else
		(void)*p;
	t->probing = 0;
}

static void one_call(struct thread *t)
{
	if (single_thread && chance(t, 3))
		raise_safe(t);
	if (chance(t, 3))
		touch_arena(t);
	long nr = pick_nr(t);
	uint64_t a[6];
	switch (classify(nr)) {
	case MEMORY:
		memory(t, nr, a);
		break;
	case SPECIAL:
		special(t, nr, a);
		break;
	default:
		arguments(t, nr, a);
	}
	if (chance(t, 40))
		seed_buffers(t);
	scrub(t);
	t->nr = nr;
	for (int i = 0; i < 6; i++)
		t->args[i] = a[i];
	if (trace)
		say(ERR_FD, "fuzz: %d.%lu %ld(%#lx, %#lx, %#lx, %#lx, %#lx, %#lx)\n", t->index, t->count + 1, nr, a[0],
		    a[1], a[2], a[3], a[4], a[5]);
	long r = sys6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	t->calls++;
	t->count++;
	if (trace)
		say(ERR_FD, "fuzz: %d.%lu = %ld\n", t->index, t->count, r);
	if (r >= 0) {
		t->ok++;
		if (makes_fd(nr, a))
			remember(t, r);
		/* pipe, pipe2, socketpair: the new fds are in memory. */
		int *fds = NULL;
		if (nr == 22 || nr == 293)
			fds = (int *)a[0];
		else if (nr == 53)
			fds = (int *)a[3];
		if (fds && (in(t->data, data_end(t), fds) || (t->top && in(t->top, top_end(t), fds)))) {
			remember(t, fds[0]);
			remember(t, fds[1]);
		}
	} else if (r == -ENOSYS) {
		t->enosys++;
	} else {
		t->failed++;
		if (r == -EINTR)
			t->eintr++;
	}
	t->nr = -1;
}

/* ---- signals ---- */

static void tick(int sig)
{
	(void)sig;
	ticks++;
}

static struct thread *current(void)
{
	pid_t tid = sys6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	for (int i = 0; i <= MAX_THREADS; i++)
		if (threads[i].tid == tid)
			return &threads[i];
	return NULL;
}

static void handle(int sig, void (*fn)(int), int flags);

/* A signal no fuzzed call should cause: report what was going on, then
 * die of it (the handler was reset to the default on entry). */
static void fatal(int sig, siginfo_t *info, void *context)
{
	struct thread *probing = current();
	if (probing && probing->probing && (sig == SIGSEGV || sig == SIGBUS)) {
		probing->probing = 0;
		siglongjmp(probing->probe, 1);
	}
	handle(sig, SIG_DFL, 0);
	ucontext_t *uc = context;
	unsigned long rip = uc->uc_mcontext.gregs[REG_RIP], rsp = uc->uc_mcontext.gregs[REG_RSP],
		      rdi = uc->uc_mcontext.gregs[REG_RDI];
	struct thread *t = current();
	if (t && t->nr >= 0)
		say(ERR_FD, "fuzz: FATAL signal %d (code %d, addr %#lx) in thread %d at call %lu: "
			    "syscall %ld(%#lx, %#lx, %#lx, %#lx, %#lx, %#lx); seed %lu\n",
		    sig, info->si_code, (unsigned long)info->si_addr, t->index, t->count, t->nr, t->args[0],
		    t->args[1], t->args[2], t->args[3], t->args[4], t->args[5], seed);
	else
		say(ERR_FD, "fuzz: FATAL signal %d (code %d, addr %#lx) at rip %#lx rsp %#lx rdi %#lx in thread %d outside a fuzzed call; seed %lu\n", sig,
		    info->si_code, (unsigned long)info->si_addr, rip, rsp, rdi, t ? t->index : -1, seed);
	sys6(SYS_tgkill, getpid(), sys6(SYS_gettid, 0, 0, 0, 0, 0, 0), sig, 0, 0, 0);
}

static void handle(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa = {0};
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	if (sigaction(sig, &sa, NULL))
		die("fuzz: sigaction %s: errno %d\n", "failed");
}

static void signals_setup(void)
{
	handle(SIGALRM, tick, 0); /* no SA_RESTART: blocked calls end with EINTR */
	handle(SIGPIPE, SIG_IGN, 0);
	handle(SIGXFSZ, SIG_IGN, 0);
	const int deadly[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT};
	for (unsigned i = 0; i < sizeof deadly / sizeof deadly[0]; i++) {
		struct sigaction sa = {0};
		sa.sa_sigaction = fatal;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER;
		if (sigaction(deadly[i], &sa, NULL))
			die("fuzz: sigaction %s: errno %d\n", "fatal");
	}
}

/* ---- set-up ---- */

static void learn_restorer(void)
{
	struct kaction k;
	handle(SIGUSR1, noop, 0);
	if (!sys6(SYS_rt_sigaction, SIGUSR1, 0, (uint64_t)&k, 8, 0, 0) && k.flags & SA_RESTORER)
		restorer = k.restorer;
	handle(SIGUSR1, SIG_DFL, 0);
}

static void *map(void *at, size_t len, int prot, int flags)
{
	void *p = mmap(at, len, prot, flags | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void buffers(struct thread *t)
{
	unsigned char *p = map(NULL, (DATA_PAGES + 2) * PAGE, PROT_NONE, 0);
	if (!p || mprotect(p + PAGE, DATA_PAGES * PAGE, PROT_READ | PROT_WRITE))
		die("fuzz: %s: errno %d\n", "data buffer");
	t->data = p + PAGE;
	t->arena = map(NULL, ARENA_PAGES * PAGE, PROT_READ | PROT_WRITE, 0);
	if (!t->arena)
		die("fuzz: %s: errno %d\n", "arena");
	for (size_t i = 0; i < DATA_PAGES * PAGE; i++)
		t->data[i] = next(t);
	if (t->index == 0) {
		/* The top of km's payload range, a guard page below its
		 * monitor area (nothing is there natively). */
		unsigned char *at = (unsigned char *)(MONITOR - (TOP_PAGES + 2) * PAGE);
		p = map(at, (TOP_PAGES + 1) * PAGE, PROT_NONE, MAP_FIXED_NOREPLACE);
		if (p == at && !mprotect(p + PAGE, TOP_PAGES * PAGE, PROT_READ | PROT_WRITE)) {
			t->top = p + PAGE;
			for (size_t i = 0; i < TOP_PAGES * PAGE; i++)
				t->top[i] = next(t);
		}
	}
	scrub(t);
}

static int scratch_is_empty(void)
{
	char buf[4096];
	int dir = open(".", O_RDONLY | O_DIRECTORY);
	if (dir < 0)
		return 0;
	long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
	close(dir);
	int entries = 0;
	for (long off = 0; off < n;) {
		unsigned short reclen = *(unsigned short *)(buf + off + 16);
		const char *name = buf + off + 19;
		if (strcmp(name, ".") && strcmp(name, ".."))
			entries++;
		off += reclen;
	}
	return n >= 0 && entries == 0;
}

static void move_fd(int from, int to)
{
	if (dup2(from, to) != to)
		die("fuzz: %s: errno %d\n", "dup2");
}

/* Fds 0-2 become the fuzzer's own; a few more fds of every kind it can
 * make without naming anything outside the scratch directory. */
static void fds_setup(void)
{
	/* Fds inherited from whoever started it (a test runner's /dev/null,
	 * say) are not its own: it must never act on them. */
	syscall(SYS_close_range, 3, ~0U, 0);
	move_fd(1, OUT_FD);
	move_fd(2, ERR_FD);
	err_fd = ERR_FD;
	int dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		die("fuzz: %s: errno %d\n", "open .");
	move_fd(dir, DIR_FD);
	close(dir);
	fcntl(OUT_FD, F_SETFD, FD_CLOEXEC);
	fcntl(ERR_FD, F_SETFD, FD_CLOEXEC);
	int p[2];
	if (pipe(p))
		die("fuzz: %s: errno %d\n", "pipe");
	move_fd(p[0], 0);
	move_fd(p[1], 1);
	int log = open("log", O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (log < 0)
		die("fuzz: %s: errno %d\n", "open log");
	move_fd(log, 2);
	int f0 = open("f0", O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (f0 < 0 || write(f0, "hello fuzz", 10) != 10)
		die("fuzz: %s: errno %d\n", "f0");
	mkdir("d0", 0700);
	open("d0", O_RDONLY | O_DIRECTORY);
	pipe2(p, O_NONBLOCK);
	syscall(SYS_eventfd2, 0, 0);
	syscall(SYS_epoll_create1, 0);
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
	syscall(SYS_timerfd_create, CLOCK_MONOTONIC, 0);
	syscall(SYS_memfd_create, "m", 0);
}

static void pool_setup(struct thread *t)
{
	for (int f = 0; f < 24; f++)
		if (fcntl(f, F_GETFD) >= 0)
			remember(t, f);
}

/* ---- cleanup: the scratch directory is left empty ---- */

static void remove_tree(int dir, int depth)
{
	char buf[8192];
	for (int round = 0; round < 1000; round++) {
		long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
		if (n <= 0)
			return;
		int removed = 0;
		for (long off = 0; off < n;) {
			unsigned short reclen = *(unsigned short *)(buf + off + 16);
			const char *name = buf + off + 19;
			off += reclen;
			if (!strcmp(name, ".") || !strcmp(name, ".."))
				continue;
			if (!unlinkat(dir, name, 0)) {
				removed++;
				continue;
			}
			int sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			if (sub >= 0) {
				if (depth < 64)
					remove_tree(sub, depth + 1);
				close(sub);
			}
			if (!unlinkat(dir, name, AT_REMOVEDIR))
				removed++;
		}
		lseek(dir, 0, SEEK_SET);
		if (!removed)
			return;
	}
}

/* ---- threads ---- */

static unsigned long calls_per_thread;

static void run(struct thread *t)
{
	while (t->calls < calls_per_thread)
		one_call(t);
}

static void *worker(void *arg)
{
	struct thread *t = arg;
	t->tid = sys6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	run(t);
	t->done = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	const char *replay = getenv("FUZZ_SEED");
	if (argc != 4) {
		fprintf(stderr, "usage: fuzz SEED CALLS THREADS (FUZZ_SEED=n overrides SEED)\n");
		return 2;
	}
	seed = strtoul(replay ? replay : argv[1], NULL, 0);
	calls_per_thread = strtoul(argv[2], NULL, 0);
	int nthreads = atoi(argv[3]);
	if (nthreads < 0 || nthreads > MAX_THREADS) {
		fprintf(stderr, "fuzz: 0 to %d threads\n", MAX_THREADS);
		return 2;
	}
	under_km = getauxval(AT_SYSINFO_EHDR) >> 30 == MONITOR >> 30;
	trace = getenv("FUZZ_TRACE") && !strcmp(getenv("FUZZ_TRACE"), "1");
	const char *native = getenv("FUZZ_ALLOW_NATIVE");
	if (!under_km && !(native && !strcmp(native, "1"))) {
		fprintf(stderr, "fuzz: not under km; random syscalls natively need FUZZ_ALLOW_NATIVE=1\n");
		return 2;
	}
	if (!scratch_is_empty()) {
		fprintf(stderr, "fuzz: the current directory must be an empty scratch directory\n");
		return 2;
	}
	printf("fuzz: seed %lu calls %lu threads %d\n", seed, calls_per_thread, nthreads);
	fflush(stdout);

	struct rlimit fsize = {MIB, MIB};
	if (setrlimit(RLIMIT_FSIZE, &fsize))
		die("fuzz: %s: errno %d\n", "setrlimit");
	umask(077);
	signals_setup();
	learn_restorer();
	fds_setup();

	workers = nthreads ? nthreads : 1;
	for (int i = 0; i < workers; i++) {
		threads[i].index = i;
		threads[i].rng = seed * 0x100000001b3ULL + i;
		threads[i].nr = -1;
		buffers(&threads[i]);
		pool_setup(&threads[i]);
	}
	single_thread = nthreads == 0;
	if (nthreads == 0) {
		threads[0].tid = sys6(SYS_gettid, 0, 0, 0, 0, 0, 0);
		struct itimerval it = {{0, TICK_NS / 1000}, {0, TICK_NS / 1000}};
		if (setitimer(ITIMER_REAL, &it, NULL))
			die("fuzz: %s: errno %d\n", "setitimer");
		run(&threads[0]);
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_REAL, &off, NULL);
	} else {
		/* The main thread is the watchdog: a process-wide timer would
		 * interrupt one thread only. */
		pthread_t ids[MAX_THREADS];
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		for (int i = 0; i < nthreads; i++) {
			int e = pthread_create(&ids[i], &attr, worker, &threads[i]);
			if (e) {
				errno = e;
				die("fuzz: %s: errno %d\n", "pthread_create");
			}
		}
		for (;;) {
			int running = 0;
			for (int i = 0; i < nthreads; i++) {
				if (threads[i].done)
					continue;
				running++;
				if (threads[i].tid)
					sys6(SYS_tgkill, getpid(), threads[i].tid, SIGALRM, 0, 0, 0);
			}
			if (!running)
				break;
			struct timespec ts = {0, TICK_NS};
			nanosleep(&ts, NULL);
		}
		for (int i = 0; i < nthreads; i++)
			pthread_join(ids[i], NULL);
	}

	unsigned long calls = 0, ok = 0, failed = 0, enosys = 0, eintr = 0, probes = 0, faults = 0;
	for (int i = 0; i < workers; i++) {
		calls += threads[i].calls;
		ok += threads[i].ok;
		failed += threads[i].failed;
		enosys += threads[i].enosys;
		eintr += threads[i].eintr;
		probes += threads[i].probes;
		faults += threads[i].probe_faults;
	}
	remove_tree(DIR_FD, 0);
	say(OUT_FD, "fuzz: done seed %lu calls %lu succeeded %lu failed %lu (EINTR %lu) ENOSYS %lu watchdog %lu "
	    "handled %lu arena touches %lu (faults %lu)\n",
	    seed, calls, ok, failed, eintr, enosys, ticks, caught, probes, faults);
	return 0;
}
