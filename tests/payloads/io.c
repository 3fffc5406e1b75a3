/* io MODE: bulk data through the standard descriptors.
 *   bigwrite - 64 MiB of a fixed pattern to stdout with large write()s
 *              (byte i = (i * 2654435761) >> 24, 32-bit arithmetic)
 *   cat      - copy stdin to stdout
 * Both report the byte count on stderr; the harness checks the data. */
#include "common.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* write() may be partial on a pipe (e.g. interrupted); finish the job. */
static void write_all(const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(1, p, len);
		CHECK(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void bigwrite(void)
{
	const size_t total = 64UL << 20, chunk = 16UL << 20;
	unsigned char *buf = mmap(NULL, total, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(buf != MAP_FAILED);
	for (size_t i = 0; i < total; i++)
		buf[i] = (unsigned char)(((uint32_t)i * 2654435761u) >> 24);
	/* 16 MiB per call: far more than a pipe holds, so km must pass large
	 * buffers through rather than assume small ones. */
	for (size_t off = 0; off < total; off += chunk)
		write_all(buf + off, chunk);
	fprintf(stderr, "wrote %zu\n", total);
}

static void cat(void)
{
	static unsigned char buf[65536];
	size_t total = 0;
	ssize_t n;

	while ((n = read(0, buf, sizeof buf)) > 0) {
		write_all(buf, (size_t)n);
		total += (size_t)n;
	}
	CHECK(n == 0);
	fprintf(stderr, "copied %zu\n", total);
}

int main(int argc, char **argv)
{
	if (MODE("bigwrite"))
		bigwrite();
	else if (MODE("cat"))
		cat();
	else {
		fprintf(stderr, "usage: io bigwrite|cat\n");
		return 2;
	}
	return 0;
}
