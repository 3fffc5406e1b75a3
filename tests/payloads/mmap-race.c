/* mmap-race [PAIRS [ITERS]]: the address-space contention pattern
 * (benches/mmap-contention.c), small, with the data checked. PAIRS pairs
 * (default 8) of a mapper and a checker, plus PAIRS touchers writing their
 * own buffers meanwhile. Each round (ITERS, default 40) the mapper maps two
 * fresh pages (mostly at the address it just unmapped), writes a canary
 * for the round into both and hands them to its checker, which must read
 * exactly that canary (a stale translation would show the last round's
 * page) and answers through the pages. The mapper then makes them
 * read-only; the checker's write must fault. Then the mapper unmaps them.
 * Meanwhile one more thread grows and shrinks the break and moves a
 * mapping with mremap (calls km serves with the address space to itself),
 * checking their contents. Prints one line of totals; any mismatch is
 * reported on stderr, exit 1. */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096
#define LONGS (PAGE / sizeof(long))

enum { IDLE, MAPPED, CHECKED, READ_ONLY, FAULT_CHECKED, DONE };

struct pair {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int state;
	volatile long *pages;
	long canary;
	int faults;
};

static int iters = 40;
static atomic_int mappers_left;
static __thread sigjmp_buf on_segv;

static void segv(int sig)
{
	(void)sig;
	siglongjmp(on_segv, 1);
}

static void set_state(struct pair *p, int state)
{
	pthread_mutex_lock(&p->lock);
	p->state = state;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

static void wait_state(struct pair *p, int state)
{
	pthread_mutex_lock(&p->lock);
	while (p->state != state)
		pthread_cond_wait(&p->changed, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

static void fail(const char *what, long round, long got, long want)
{
	fprintf(stderr, "%s in round %ld: got %#lx, want %#lx\n", what, round, got, want);
	exit(1);
}

static void *mapper(void *arg)
{
	struct pair *p = arg;
	for (long i = 0; i < iters; i++) {
		volatile long *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(m != MAP_FAILED);
		long canary = ((long)(uintptr_t)p << 16) ^ (i + 1);
		if (m[0] != 0 || m[LONGS] != 0)
			fail("fresh page not zero", i, m[0] | m[LONGS], 0);
		m[0] = m[LONGS] = canary;
		p->pages = m;
		p->canary = canary;
		set_state(p, MAPPED);
		wait_state(p, CHECKED);
		if (m[1] != ~canary || m[LONGS + 1] != ~canary)
			fail("checker's answer", i, m[1], ~canary);
		CHECK(mprotect((void *)m, 2 * PAGE, PROT_READ) == 0);
		set_state(p, READ_ONLY);
		wait_state(p, FAULT_CHECKED);
		CHECK(munmap((void *)m, 2 * PAGE) == 0);
	}
	set_state(p, DONE);
	atomic_fetch_sub(&mappers_left, 1);
	return NULL;
}

/* Whether a write to `at` faults. */
static int write_faults(volatile long *at)
{
	if (sigsetjmp(on_segv, 1))
		return 1;
	*at = 1;
	return 0;
}

static void *checker(void *arg)
{
	struct pair *p = arg;
	for (long i = 0; i < iters; i++) {
		wait_state(p, MAPPED);
		volatile long *m = p->pages;
		if (m[0] != p->canary || m[LONGS] != p->canary)
			fail("checker read", i, m[0] != p->canary ? m[0] : m[LONGS], p->canary);
		m[1] = m[LONGS + 1] = ~p->canary;
		set_state(p, CHECKED);
		wait_state(p, READ_ONLY);
		if (!write_faults(&m[LONGS + 2]))
			fail("write to a read-only page did not fault", i, m[LONGS + 2], 0);
		p->faults++;
		set_state(p, FAULT_CHECKED);
	}
	return NULL;
}

/* brk and mremap, ITERS rounds, while the pairs run. */
static void *resizer(void *arg)
{
	(void)arg;
	long *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	for (long i = 0; i < iters; i++) {
		/* musl's sbrk only reports the break: ask the kernel directly. */
		long cur = syscall(SYS_brk, 0);
		CHECK(syscall(SYS_brk, cur + PAGE) == cur + PAGE);
		long *top = (long *)cur;
		top[0] = i;
		CHECK(top[0] == i && syscall(SYS_brk, cur) == cur);
		m[0] = i;
		long *grown = mremap(m, PAGE, 4 * PAGE, MREMAP_MAYMOVE);
		CHECK(grown != MAP_FAILED);
		grown[3 * LONGS] = ~i;
		if (grown[0] != i || grown[3 * LONGS] != ~i)
			fail("mremap contents", i, grown[0], i);
		m = mremap(grown, 4 * PAGE, PAGE, 0);
		CHECK(m == grown);
	}
	CHECK(munmap(m, PAGE) == 0);
	return NULL;
}

static void *toucher(void *arg)
{
	(void)arg;
	volatile long *buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(buf != MAP_FAILED);
	for (long round = 1; atomic_load(&mappers_left) > 0; round++)
		for (int k = 0; k < 4; k++) {
			buf[k * LONGS] = round;
			if (buf[k * LONGS] != round)
				fail("toucher", round, buf[k * LONGS], round);
		}
	return NULL;
}

int main(int argc, char **argv)
{
	int pairs = argc > 1 ? atoi(argv[1]) : 8;
	iters = argc > 2 ? atoi(argv[2]) : 40;
	CHECK(pairs > 0 && pairs <= 64 && iters > 0);
	struct sigaction sa = { .sa_handler = segv };
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
	struct pair *p = calloc(pairs, sizeof *p);
	pthread_t *t = calloc(3 * pairs + 1, sizeof *t);
	CHECK(p && t);
	atomic_store(&mappers_left, pairs);
	for (int i = 0; i < pairs; i++) {
		pthread_mutex_init(&p[i].lock, NULL);
		pthread_cond_init(&p[i].changed, NULL);
		CHECK(pthread_create(&t[3 * i], NULL, mapper, &p[i]) == 0);
		CHECK(pthread_create(&t[3 * i + 1], NULL, checker, &p[i]) == 0);
		CHECK(pthread_create(&t[3 * i + 2], NULL, toucher, NULL) == 0);
	}
	CHECK(pthread_create(&t[3 * pairs], NULL, resizer, NULL) == 0);
	int faults = 0;
	for (int i = 0; i < 3 * pairs + 1; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < pairs; i++)
		faults += p[i].faults;
	printf("pairs %d, rounds %d: canaries seen %d, read-only writes faulted %d\n", pairs, iters, pairs * iters,
	       faults);
	return 0;
}
