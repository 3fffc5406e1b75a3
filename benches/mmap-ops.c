/* The per-operation costs that bound benches/mmap-contention.c, with no
 * contention at all (one thread): what one mapper iteration is made of.
 * Prints one "NAME NANOSECONDS" line per operation:
 *   map-unmap   mmap + munmap of 16 pages, never touched
 *   first-touch a write to a fresh page of a new mapping (per page)
 *   refault     a read of a page after mprotect(PROT_READ) (per page)
 *   iteration   a whole mapper iteration of mmap-contention.c
 * Under km the last three are dominated by the device: every host
 * mprotect/munmap invalidates the device's view of those pages, and each
 * page is then faulted in again on the next guest access. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGES 16
#define PAGE 4096
#define ROUNDS 300

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static volatile unsigned long *map(void)
{
	void *p = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void unmap(volatile unsigned long *p)
{
	if (munmap((void *)p, PAGES * PAGE) != 0) {
		perror("munmap");
		exit(1);
	}
}

static void protect(volatile unsigned long *p, int prot)
{
	if (mprotect((void *)p, PAGES * PAGE, prot) != 0) {
		perror("mprotect");
		exit(1);
	}
}

static void touch(volatile unsigned long *p, unsigned long v)
{
	for (int k = 0; k < PAGES; k++)
		p[k * PAGE / sizeof *p] = v + k;
}

static unsigned long sum(volatile unsigned long *p)
{
	unsigned long s = 0;
	for (int k = 0; k < PAGES; k++)
		s += p[k * PAGE / sizeof *p];
	return s;
}

int main(void)
{
	double t, map_unmap = 0, first = 0, refault = 0, iteration = 0;
	unsigned long check = 0;
	for (int i = 0; i < ROUNDS; i++) {
		t = now();
		unmap(map());
		map_unmap += now() - t;

		volatile unsigned long *p = map();
		t = now();
		touch(p, i);
		first += now() - t;
		protect(p, PROT_READ);
		t = now();
		check += sum(p);
		refault += now() - t;
		unmap(p);

		t = now();
		p = map();
		touch(p, i);
		protect(p, PROT_READ);
		check += sum(p);
		unmap(p);
		iteration += now() - t;
	}
	/* Both sums add 16 * i + 120 per round: a wrong page is caught here. */
	if (check != 2 * (16UL * ROUNDS * (ROUNDS - 1) / 2 + 120UL * ROUNDS)) {
		fprintf(stderr, "mmap-ops: wrong values read back\n");
		return 1;
	}
	printf("map-unmap %.0f\n", map_unmap / ROUNDS);
	printf("first-touch %.0f\n", first / ROUNDS / PAGES);
	printf("refault %.0f\n", refault / ROUNDS / PAGES);
	printf("iteration %.0f\n", iteration / ROUNDS);
	return 0;
}
