/* exitcode N: exits with status N through exit_group, printing nothing,
 * so that a run costs little more than km's startup and teardown. */
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	exit(atoi(argv[1]));
}
