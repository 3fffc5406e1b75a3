/* crash MODE: dies of a CPU exception the kernel turns into a signal.
 *   null  - load through NULL           -> SIGSEGV (status 139)
 *   trap  - ud2 via __builtin_trap      -> SIGILL  (status 132)
 *   div0  - integer divide by zero (#DE) -> SIGFPE  (status 136)
 * It prints (and flushes) a line first, proving output written before the
 * fault still reaches the harness. */
#include "common.h"

int main(int argc, char **argv)
{
	printf("crash %s\n", argc > 1 ? argv[1] : "?");
	fflush(stdout);

	if (MODE("null")) {
		volatile int *p = NULL;
		return *p;
	}
	if (MODE("trap"))
		__builtin_trap();
	if (MODE("div0")) {
		/* volatile keeps the compiler from folding or hoisting the idiv. */
		volatile int zero = 0, num = 42;
		return num / zero;
	}
	fprintf(stderr, "usage: crash null|trap|div0\n");
	return 2;
}
