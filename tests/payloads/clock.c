/* Time through the vDSO.
 *
 *   clock        the checks: the vDSO is there and exports Linux's time
 *                functions, its clocks agree with the syscalls and with
 *                each other, CLOCK_MONOTONIC never goes back, and clocks
 *                advance across a sleep
 *   clock loop   1000 calls of each vDSO time function, nothing printed
 *                (the test counts km's syscall exits meanwhile)
 *
 * Prints facts only ("yes"/"no"), never times. */
#include "common.h"

#include <elf.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);
typedef time_t (*time_fn)(time_t *);
typedef int (*clock_getres_fn)(clockid_t, struct timespec *);

/* Looks `name` up in the vDSO's dynamic symbol table (via DT_HASH). */
static void *vdso_sym(const char *name)
{
	const unsigned char *base = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
	if (!base)
		return NULL;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
	const Elf64_Dyn *dyn = NULL;
	intptr_t load = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD)
			load = (intptr_t)base + (intptr_t)ph[i].p_offset - (intptr_t)ph[i].p_vaddr;
		else if (ph[i].p_type == PT_DYNAMIC)
			dyn = (const Elf64_Dyn *)(base + ph[i].p_offset);
	}
	CHECK(dyn != NULL);
	const Elf32_Word *hash = NULL;
	const Elf64_Sym *syms = NULL;
	const char *strs = NULL;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_HASH)
			hash = (const Elf32_Word *)(load + dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_SYMTAB)
			syms = (const Elf64_Sym *)(load + dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_STRTAB)
			strs = (const char *)(load + dyn->d_un.d_ptr);
	}
	CHECK(hash && syms && strs);
	for (Elf32_Word i = 0; i < hash[1]; i++) {
		if (syms[i].st_shndx != SHN_UNDEF && strcmp(strs + syms[i].st_name, name) == 0)
			return (void *)(load + syms[i].st_value);
	}
	return NULL;
}

static long long ns(struct timespec t)
{
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long raw_ns(clockid_t id)
{
	struct timespec t;
	CHECK(syscall(SYS_clock_gettime, id, &t) == 0);
	return ns(t);
}

/* Slack for comparing the vDSO with the syscalls around it: km's guest
 * clock may lead the host's by microseconds after a re-base. */
#define SLACK_NS 1000000LL

int main(int argc, char **argv)
{
	clock_gettime_fn cgt = (clock_gettime_fn)vdso_sym("__vdso_clock_gettime");
	gettimeofday_fn gtod = (gettimeofday_fn)vdso_sym("__vdso_gettimeofday");
	time_fn vtime = (time_fn)vdso_sym("__vdso_time");
	clock_getres_fn getres = (clock_getres_fn)vdso_sym("__vdso_clock_getres");

	if (MODE("loop")) {
		struct timespec t;
		struct timeval tv;
		for (int i = 0; i < 1000; i++) {
			CHECK(clock_gettime(CLOCK_MONOTONIC, &t) == 0);
			CHECK(clock_gettime(CLOCK_REALTIME, &t) == 0);
			CHECK(cgt(CLOCK_BOOTTIME, &t) == 0);
			CHECK(gtod(&tv, NULL) == 0);
			CHECK(vtime(NULL) > 0);
			CHECK(getres(CLOCK_MONOTONIC, &t) == 0);
		}
		return 0;
	}

	printf("vDSO present: %s\n", yes(getauxval(AT_SYSINFO_EHDR) != 0));
	printf("exports clock_gettime gettimeofday time clock_getres getcpu: %s\n",
	       yes(cgt && gtod && vtime && getres && vdso_sym("__vdso_getcpu")));
	CHECK(cgt && gtod && vtime && getres);

	struct timespec prev, cur;
	int back = 0;
	CHECK(clock_gettime(CLOCK_MONOTONIC, &prev) == 0);
	for (int i = 0; i < 100000; i++) {
		CHECK(clock_gettime(CLOCK_MONOTONIC, &cur) == 0);
		back += ns(cur) < ns(prev);
		prev = cur;
	}
	printf("CLOCK_MONOTONIC never went back in 100000 calls: %s\n", yes(!back));

	static const struct {
		const char *name;
		clockid_t id;
	} clocks[] = {
		{"CLOCK_REALTIME", CLOCK_REALTIME},
		{"CLOCK_MONOTONIC", CLOCK_MONOTONIC},
		{"CLOCK_BOOTTIME", CLOCK_BOOTTIME},
		{"CLOCK_TAI", CLOCK_TAI},
		{"CLOCK_MONOTONIC_RAW", CLOCK_MONOTONIC_RAW},
		{"CLOCK_PROCESS_CPUTIME_ID", CLOCK_PROCESS_CPUTIME_ID},
	};
	for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
		long long before = raw_ns(clocks[i].id);
		CHECK(cgt(clocks[i].id, &cur) == 0);
		long long after = raw_ns(clocks[i].id);
		int ok = ns(cur) >= before - SLACK_NS && ns(cur) <= after + SLACK_NS;
		printf("vDSO %s agrees with the syscall: %s\n", clocks[i].name, yes(ok));
	}
	printf("vDSO clock_gettime of an unknown clock: %d\n", cgt(1000, &cur));

	struct timeval tv;
	long long before = raw_ns(CLOCK_REALTIME);
	CHECK(gtod(&tv, NULL) == 0);
	long long after = raw_ns(CLOCK_REALTIME);
	long long us = tv.tv_sec * 1000000LL + tv.tv_usec;
	printf("vDSO gettimeofday agrees with CLOCK_REALTIME: %s\n",
	       yes(us * 1000 >= before - SLACK_NS - 1000 && us * 1000 <= after + SLACK_NS));
	struct timezone tz;
	printf("vDSO gettimeofday with a timezone: %d\n", gtod(&tv, &tz));

	/* Natively the vDSO's seconds can trail the syscall's for a moment
	 * as a second begins (the kernel updates them one after the other),
	 * so one attempt of a few may straddle that; one must agree. */
	int agree = 0;
	time_t t1, t3;
	for (int i = 0; i < 5 && !agree; i++) {
		long t0 = syscall(SYS_time, NULL);
		time_t t2 = time(NULL);
		t3 = vtime(&t1);
		long t4 = syscall(SYS_time, NULL);
		agree = t0 <= t2 && t2 <= t3 && t3 == t1 && t3 <= t4 + 1;
	}
	printf("time() and vDSO time agree with the time syscall: %s\n", yes(agree));
	CHECK(clock_gettime(CLOCK_REALTIME, &cur) == 0);
	printf("CLOCK_REALTIME agrees with time(): %s\n", yes(cur.tv_sec >= t3 && cur.tv_sec <= time(NULL)));

	struct timespec res, sysres;
	for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
		CHECK(getres(clocks[i].id, &res) == 0);
		CHECK(syscall(SYS_clock_getres, clocks[i].id, &sysres) == 0);
		printf("vDSO clock_getres %s agrees: %s\n", clocks[i].name, yes(ns(res) == ns(sysres)));
	}

	struct timespec mono0, real0, mono1, real1;
	CHECK(clock_gettime(CLOCK_MONOTONIC, &mono0) == 0);
	CHECK(clock_gettime(CLOCK_REALTIME, &real0) == 0);
	struct timespec nap = {0, 20 * 1000 * 1000};
	CHECK(nanosleep(&nap, NULL) == 0);
	CHECK(clock_gettime(CLOCK_MONOTONIC, &mono1) == 0);
	CHECK(clock_gettime(CLOCK_REALTIME, &real1) == 0);
	printf("CLOCK_MONOTONIC advanced at least 20 ms across a 20 ms sleep: %s\n",
	       yes(ns(mono1) - ns(mono0) >= 20000000LL));
	printf("CLOCK_REALTIME advanced across the sleep: %s\n", yes(ns(real1) > ns(real0)));
	printf("done\n");
	return 0;
}
