/* tlb-race [SYSCALLS [ROUNDS]]: two threads each make SYSCALLS system calls
 * (default 100000) while a third changes the page they read under them,
 * ROUNDS times (default 200): each round it unmaps the page and maps a
 * fresh one at the same address with a new canary, then makes it
 * read-only. Between calls the two threads check the page against a
 * sequence count the changer bumps around each change (odd: changing):
 * while the count stays even across the check, a read must give the
 * round's canary (a stale translation would show the last round's page)
 * and, in the read-only half, a write must fault (a stale writable
 * translation would let it through). The changer moves on only once both
 * threads have checked each half. Prints one line of totals; a mismatch
 * is reported on stderr, exit 1. */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096
#define READERS 2

static long syscalls = 100000;
static long rounds = 200;
static volatile long *page;
/* seq % 4: 1 replacing, 2 read-write with the canary, 3 going read-only,
 * 0 (after the first round) read-only. */
static atomic_long seq;
static atomic_int checked[4];
static atomic_int changer_done;
static __thread sigjmp_buf on_segv;
static __thread volatile int expect_segv;

static long canary(long s)
{
	return 0x5eed0000L + (s - 1) / 4;
}

static void segv(int sig)
{
	(void)sig;
	if (!expect_segv)
		abort();
	siglongjmp(on_segv, 1);
}

static void fail(const char *what, long s, long got)
{
	fprintf(stderr, "%s at sequence %ld: got %#lx, want %#lx\n", what, s, got, canary(s));
	exit(1);
}

/* Reads the page, 1 if that faulted (the page is being replaced). */
static int read_page(long *v)
{
	expect_segv = 1;
	if (sigsetjmp(on_segv, 0)) {
		expect_segv = 0;
		return 1;
	}
	*v = page[0];
	expect_segv = 0;
	return 0;
}

/* Writes the page, 1 if that faulted. */
static int write_page(void)
{
	expect_segv = 1;
	if (sigsetjmp(on_segv, 0)) {
		expect_segv = 0;
		return 1;
	}
	page[1] = -1;
	expect_segv = 0;
	return 0;
}

static void *reader(void *arg)
{
	(void)arg;
	long last[4] = { 0 };
	for (long n = 0; n < syscalls || !atomic_load(&changer_done); n++) {
		syscall(SYS_getppid);
		long s = atomic_load(&seq), v = 0;
		if (s % 2 || s == 0)
			continue;
		int read_faulted = read_page(&v);
		int write_faulted = s % 4 == 0 ? write_page() : 1;
		if (atomic_load(&seq) != s)
			continue; /* the page changed meanwhile: nothing to check */
		if (read_faulted)
			fail("read of a mapped page faulted", s, 0);
		if (v != canary(s))
			fail("stale page read", s, v);
		if (!write_faulted)
			fail("write to a read-only page went through", s, page[1]);
		if (last[s % 4] != s) {
			last[s % 4] = s;
			atomic_fetch_add(&checked[s % 4], 1);
		}
	}
	return NULL;
}

/* Publishes sequence `s` and waits until both readers have checked it. */
static void publish(long s)
{
	atomic_store(&checked[s % 4], 0);
	atomic_store(&seq, s);
	while (atomic_load(&checked[s % 4]) < READERS)
		sched_yield();
}

static void *changer(void *arg)
{
	(void)arg;
	for (long r = 0; r < rounds; r++) {
		long s = 4 * r + 1;
		atomic_store(&seq, s);
		CHECK(munmap((void *)page, PAGE) == 0);
		void *p = mmap((void *)page, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		CHECK(p == (void *)page);
		page[0] = canary(s + 1);
		publish(s + 1);
		atomic_store(&seq, s + 2);
		CHECK(mprotect((void *)page, PAGE, PROT_READ) == 0);
		publish(s + 3);
		if (page[0] != canary(s + 3))
			fail("read-only page changed", s + 3, page[0]);
	}
	atomic_store(&changer_done, 1);
	return NULL;
}

int main(int argc, char **argv)
{
	syscalls = argc > 1 ? atol(argv[1]) : syscalls;
	rounds = argc > 2 ? atol(argv[2]) : rounds;
	CHECK(syscalls > 0 && rounds > 0);
	/* SA_NODEFER: the handler leaves with siglongjmp, which then need not
	 * restore the mask (one system call less per check). */
	struct sigaction sa = { .sa_handler = segv, .sa_flags = SA_NODEFER };
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
	page = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(page != MAP_FAILED);
	pthread_t t[READERS + 1];
	for (int i = 0; i < READERS; i++)
		CHECK(pthread_create(&t[i], NULL, reader, NULL) == 0);
	CHECK(pthread_create(&t[READERS], NULL, changer, NULL) == 0);
	for (int i = 0; i <= READERS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	printf("%d threads x %ld syscalls, %ld rounds: canaries and read-only faults checked\n", READERS, syscalls,
	       rounds);
	return 0;
}
