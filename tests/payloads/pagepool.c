/* Address spaces that need many guest page-table pages: km registers its
 * page-table pool with the device as the pool grows, so these run past
 * the first piece (512 table pages, one per 2 MiB touched) while another
 * thread keeps using its own memory, then fork (the child's VM starts
 * from the parent's grown pool and grows it further) and check that every
 * page holds what was stored, in the child and in the parent. */
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define STEP (2UL << 20)
#define GIB (1UL << 30)

static volatile int stop;
static volatile unsigned long spins;

/* Stores and checks its own words while the main thread maps. */
static void *toucher(void *arg)
{
	(void)arg;
	static volatile unsigned long words[4096];
	for (unsigned long n = 1; !stop; n++) {
		for (int i = 0; i < 4096; i += 512)
			words[i] = n + i;
		for (int i = 0; i < 4096; i += 512)
			CHECK(words[i] == n + i);
		spins = n;
	}
	return NULL;
}

/* Maps `size` bytes and stores `tag` plus the index in the first word of
 * every 2 MiB: one page table each. */
static char *map_and_touch(unsigned long size, unsigned long tag)
{
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(p != MAP_FAILED);
	for (unsigned long i = 0; i < size / STEP; i++)
		*(volatile unsigned long *)(p + i * STEP) = tag + i;
	return p;
}

static int holds(char *p, unsigned long size, unsigned long tag)
{
	for (unsigned long i = 0; i < size / STEP; i++)
		if (*(volatile unsigned long *)(p + i * STEP) != tag + i)
			return 0;
	return 1;
}

int main(void)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, toucher, NULL) == 0);
	char *big = map_and_touch(3 * GIB, 1000);
	stop = 1;
	CHECK(pthread_join(t, NULL) == 0);
	printf("3 GiB touched every 2 MiB: %s\n", yes(holds(big, 3 * GIB, 1000)));
	printf("toucher ran: %s\n", yes(spins > 0));

	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int ok = holds(big, 3 * GIB, 1000);
		for (unsigned long i = 0; i < 3 * GIB / STEP; i++)
			*(volatile unsigned long *)(big + i * STEP) = 5000 + i;
		char *more = map_and_touch(4 * GIB, 9000);
		ok = ok && holds(big, 3 * GIB, 5000) && holds(more, 4 * GIB, 9000);
		_exit(ok ? 0 : 1);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	printf("child saw the parent's pages and grew its own: %s\n", yes(WIFEXITED(st) && WEXITSTATUS(st) == 0));
	printf("parent's pages unchanged: %s\n", yes(holds(big, 3 * GIB, 1000)));
	CHECK(munmap(big, 3 * GIB) == 0);
	char *again = map_and_touch(2 * GIB, 7000);
	printf("mapped again after munmap: %s\n", yes(holds(again, 2 * GIB, 7000)));
	return 0;
}
