/* Address-space contention: THREADS threads (default 200), half of them
 * mappers and half touchers. Each mapper loops ITERS times (default 200)
 * over mmap of 16 pages, a write to each, mprotect to read-only, a read of
 * each, munmap. Each toucher writes to every cache line of its own 16-page
 * buffer, 10 * ITERS times, so its vCPU is in the guest while the others
 * change the address space. Bounded: every thread does a fixed amount of
 * work, and SIGALRM ends the program after LIMIT seconds (default 300) if
 * it has not finished by then.
 * Prints "threads T iters I seconds S" (wall time, creation to last join). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGES 16
#define PAGE 4096
#define LINE 64

static long iters;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void fail(const char *what)
{
	perror(what);
	exit(1);
}

static void *mapper(void *arg)
{
	unsigned long id = (unsigned long)arg;
	for (long i = 0; i < iters; i++) {
		volatile unsigned long *p =
		    mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			fail("mmap");
		for (int k = 0; k < PAGES; k++)
			p[k * PAGE / sizeof *p] = id + i + k;
		if (mprotect((void *)p, PAGES * PAGE, PROT_READ) != 0)
			fail("mprotect");
		for (int k = 0; k < PAGES; k++)
			if (p[k * PAGE / sizeof *p] != id + i + k) {
				fprintf(stderr, "mapper %lu: wrong value in page %d\n", id, k);
				exit(1);
			}
		if (munmap((void *)p, PAGES * PAGE) != 0)
			fail("munmap");
	}
	return NULL;
}

static void *toucher(void *arg)
{
	(void)arg;
	volatile unsigned long *p =
	    mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap");
	for (long round = 0; round < 10 * iters; round++)
		for (unsigned long k = 0; k < PAGES * PAGE / sizeof *p; k += LINE / sizeof *p)
			p[k] += round;
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 200;
	iters = argc > 2 ? atol(argv[2]) : 200;
	int limit = argc > 3 ? atoi(argv[3]) : 300;
	if (threads < 2 || iters < 1 || limit < 1) {
		fprintf(stderr, "usage: mmap-contention [THREADS>=2 [ITERS>=1 [LIMIT>=1]]]\n");
		return 2;
	}
	alarm(limit);
	pthread_t *t = calloc(threads, sizeof *t);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	double start = now();
	for (int i = 0; i < threads; i++)
		if (pthread_create(&t[i], &attr, i % 2 ? toucher : mapper, (void *)(unsigned long)i) != 0)
			fail("pthread_create");
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	printf("threads %d iters %ld seconds %.2f\n", threads, iters, now() - start);
	return 0;
}
