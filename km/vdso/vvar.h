/* The data page km keeps one page below the vDSO image ("vvar").
 *
 * km writes it from a host thread under a seqlock (seq odd while it
 * writes); the vDSO only reads it. The layout is fixed by the offsets
 * asserted here and in km/src/guest/clock.rs. */
#ifndef KM_VVAR_H
#define KM_VVAR_H

#define KM_VVAR_SIZE 4096
/* Clock ids 0..KM_CLOCKS-1 may be served; bit id of `mask` says which. */
#define KM_CLOCKS 12

struct km_vvar {
	unsigned int seq;
	/* 0: km has no TSC relation; every call takes the syscall. */
	unsigned int mask;
	/* ns(clock) = base_ns[clock] + ((tsc - tsc_base) * mult) >> shift */
	unsigned long long tsc_base;
	unsigned long long mult;
	unsigned long long shift;
	unsigned long long base_ns[KM_CLOCKS];
	unsigned long long res_ns[KM_CLOCKS];
};

_Static_assert(__builtin_offsetof(struct km_vvar, tsc_base) == 8, "vvar layout");
_Static_assert(__builtin_offsetof(struct km_vvar, mult) == 16, "vvar layout");
_Static_assert(__builtin_offsetof(struct km_vvar, shift) == 24, "vvar layout");
_Static_assert(__builtin_offsetof(struct km_vvar, base_ns) == 32, "vvar layout");
_Static_assert(__builtin_offsetof(struct km_vvar, res_ns) == 32 + 8 * KM_CLOCKS, "vvar layout");

#endif
