/* clock_gettime(CLOCK_MONOTONIC) through the vDSO against a bare rdtsc,
 * timed inside the program. Prints two numbers, ns per call: clock_gettime,
 * then rdtsc (the floor of any TSC-based clock; the guest's rdtsc may be
 * trapped by the hypervisor). Each is the best of ROUNDS rounds of n calls,
 * so a busy host's preemptions do not count. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

#define ROUNDS 5

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	struct timespec t;
	volatile unsigned long long sink = 0;
	double best_time = 1e30, best_tsc = 1e30;
	for (int r = 0; r < ROUNDS; r++) {
		double a = now_ns();
		for (long i = 0; i < n; i++)
			clock_gettime(CLOCK_MONOTONIC, &t);
		double b = now_ns();
		for (long i = 0; i < n; i++)
			sink += __rdtsc();
		double c = now_ns();
		if (b - a < best_time)
			best_time = b - a;
		if (c - b < best_tsc)
			best_tsc = c - b;
	}
	printf("%.1f %.1f\n", best_time / n, best_tsc / n);
	return 0;
}
