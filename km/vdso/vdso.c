/* km's vDSO: time without leaving the VM.
 *
 * Clocks the data page serves are computed from the guest TSC; everything
 * else (CPU-time clocks, MONOTONIC_RAW, unknown ids, a page km marked
 * unavailable) is the real syscall, which exits to km like any other.
 * Built freestanding: no libc, no relocations, a few bytes of stack. */
#include "vvar.h"

#define SYS_gettimeofday 96
#define SYS_time 201
#define SYS_clock_gettime 228
#define SYS_clock_getres 229
#define SYS_getcpu 309
#define CLOCK_REALTIME 0
#define NSEC_PER_SEC 1000000000ULL

struct km_timespec {
	long tv_sec;
	long tv_nsec;
};

struct km_timeval {
	long tv_sec;
	long tv_usec;
};

/* The page right below the image (defined in vdso.lds). Hidden, so its
 * address is PC-relative and the image needs no relocation. */
extern const volatile struct km_vvar km_vvar __attribute__((visibility("hidden")));

static inline const volatile struct km_vvar *vvar(void)
{
	return &km_vvar;
}

static inline long sys2(long nr, long a, long b)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
	return ret;
}

static inline long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}

/* lfence keeps the TSC read from moving above the sequence load. */
static inline unsigned long long rdtsc_ordered(void)
{
	unsigned int lo, hi;
	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return ((unsigned long long)hi << 32) | lo;
}

/* Nanoseconds of clock `id`, or 0 if the page does not serve it (no
 * served clock reads 0: their bases are taken after boot and 1970). */
static inline unsigned long long clock_ns(unsigned int id)
{
	const volatile struct km_vvar *v = vvar();
	for (;;) {
		unsigned int seq = v->seq;
		if (seq & 1) {
			__asm__ volatile("pause" ::: "memory");
			continue;
		}
		if (id >= KM_CLOCKS || !((v->mask >> id) & 1))
			return 0;
		unsigned long long tsc = rdtsc_ordered();
		unsigned long long base = v->base_ns[id];
		unsigned long long tsc_base = v->tsc_base;
		unsigned long long mult = v->mult;
		unsigned int shift = (unsigned int)v->shift;
		if (v->seq != seq)
			continue;
		unsigned long long delta = tsc > tsc_base ? tsc - tsc_base : 0;
		return base + (unsigned long long)(((unsigned __int128)delta * mult) >> shift);
	}
}

int __vdso_clock_gettime(int id, struct km_timespec *ts)
{
	unsigned long long ns = clock_ns((unsigned int)id);
	if (!ns)
		return (int)sys2(SYS_clock_gettime, id, (long)ts);
	ts->tv_sec = (long)(ns / NSEC_PER_SEC);
	ts->tv_nsec = (long)(ns % NSEC_PER_SEC);
	return 0;
}

int __vdso_gettimeofday(struct km_timeval *tv, void *tz)
{
	unsigned long long ns = tv && !tz ? clock_ns(CLOCK_REALTIME) : 0;
	if (!ns)
		return (int)sys2(SYS_gettimeofday, (long)tv, (long)tz);
	tv->tv_sec = (long)(ns / NSEC_PER_SEC);
	tv->tv_usec = (long)(ns % NSEC_PER_SEC / 1000);
	return 0;
}

long __vdso_time(long *t)
{
	unsigned long long ns = clock_ns(CLOCK_REALTIME);
	if (!ns)
		return sys2(SYS_time, (long)t, 0);
	long sec = (long)(ns / NSEC_PER_SEC);
	if (t)
		*t = sec;
	return sec;
}

int __vdso_clock_getres(int id, struct km_timespec *res)
{
	const volatile struct km_vvar *v = vvar();
	unsigned int uid = (unsigned int)id;
	/* Resolutions are written once, before the payload starts. */
	if (uid >= KM_CLOCKS || !((v->mask >> uid) & 1))
		return (int)sys2(SYS_clock_getres, id, (long)res);
	if (res) {
		res->tv_sec = 0;
		res->tv_nsec = (long)v->res_ns[uid];
	}
	return 0;
}

/* The host CPU km's thread runs on is only known to the host. */
long __vdso_getcpu(unsigned int *cpu, unsigned int *node, void *cache)
{
	return sys3(SYS_getcpu, (long)cpu, (long)node, (long)cache);
}

/* The unprefixed names Linux's vDSO exports too. */
int clock_gettime(int, struct km_timespec *) __attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct km_timeval *, void *) __attribute__((weak, alias("__vdso_gettimeofday")));
long time(long *) __attribute__((weak, alias("__vdso_time")));
int clock_getres(int, struct km_timespec *) __attribute__((weak, alias("__vdso_clock_getres")));
long getcpu(unsigned int *, unsigned int *, void *) __attribute__((weak, alias("__vdso_getcpu")));
