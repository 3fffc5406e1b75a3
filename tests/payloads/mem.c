/* mem MODE [DIR]: the guest's view of memory.
 *   mmap DIR      - anonymous/file/shared mappings, mremap, madvise, msync,
 *                   mprotect (all must succeed; prints results)
 *   brk           - grow the heap to 256 MiB in steps, touch and check every
 *                   page, shrink, regrow and check the regrown pages are zero
 *   ro-write      - write to a PROT_READ page           -> SIGSEGV
 *   after-munmap  - touch a page after munmap           -> SIGSEGV
 *   stale-tlb     - write a page, mprotect it read-only, write again
 *                   -> SIGSEGV (catches a translation cached across mprotect)
 * Addresses are never printed, only offsets and contents. */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096UL

/* Is [p, p+len) mapped? msync answers ENOMEM for unmapped ranges without
 * touching memory. */
static int mapped(void *p, size_t len)
{
	return msync(p, len, MS_ASYNC) == 0;
}

static void *map_anon(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	return p;
}

static int all_bytes(const unsigned char *p, size_t len, unsigned char v)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static void anon(void)
{
	unsigned char *p = map_anon(16 * PAGE, PROT_READ | PROT_WRITE);
	printf("anon page aligned: %s\n", (uintptr_t)p % PAGE == 0 ? "yes" : "no");
	printf("anon zero: %s\n", all_bytes(p, 16 * PAGE, 0) ? "yes" : "no");
	memset(p, 0xab, 16 * PAGE);
	printf("anon pattern: %s\n", all_bytes(p, 16 * PAGE, 0xab) ? "yes" : "no");

	/* A hole in the middle leaves the neighbours intact. */
	SHOW("munmap middle page", munmap(p + 5 * PAGE, PAGE));
	printf("hole unmapped: %s, neighbours mapped: %s\n",
	       mapped(p + 5 * PAGE, PAGE) ? "no" : "yes",
	       mapped(p + 4 * PAGE, PAGE) && mapped(p + 6 * PAGE, PAGE) ? "yes" : "no");
	printf("neighbours keep data: %s\n",
	       p[4 * PAGE] == 0xab && p[6 * PAGE] == 0xab ? "yes" : "no");

	SHOW("madvise DONTNEED", madvise(p, 4 * PAGE, MADV_DONTNEED));
	printf("DONTNEED zeroes: %s, rest kept: %s\n", all_bytes(p, 4 * PAGE, 0) ? "yes" : "no",
	       all_bytes(p + 6 * PAGE, 10 * PAGE, 0xab) ? "yes" : "no");

	SHOW("mprotect read-only", mprotect(p, 4 * PAGE, PROT_READ));
	printf("still readable: %s\n", p[PAGE] == 0 ? "yes" : "no");
	SHOW("mprotect read-write", mprotect(p, 4 * PAGE, PROT_READ | PROT_WRITE));
	p[PAGE] = 7;
	printf("writable again: %s\n", p[PAGE] == 7 ? "yes" : "no");
	/* Raw syscall: musl's wrapper rounds the address down. */
	SHOW("mprotect unaligned", syscall(SYS_mprotect, p + 1, PAGE, PROT_READ));
	SHOW("munmap rest", munmap(p, 16 * PAGE));
	SHOW("munmap unaligned", munmap(p + 1, PAGE));
	SHOW("mmap zero length", (long)mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	SHOW("mmap bad fd", (long)mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, 999, 0));
}

static void remap(void)
{
	unsigned char *p = map_anon(4 * PAGE, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < 4 * PAGE; i++)
		p[i] = (unsigned char)(i * 7);

	unsigned char *q = mremap(p, 4 * PAGE, 64 * PAGE, MREMAP_MAYMOVE);
	CHECK(q != MAP_FAILED);
	int kept = 1;
	for (size_t i = 0; i < 4 * PAGE; i++)
		kept &= q[i] == (unsigned char)(i * 7);
	printf("mremap grow keeps data: %s, tail zero: %s\n", kept ? "yes" : "no",
	       all_bytes(q + 4 * PAGE, 60 * PAGE, 0) ? "yes" : "no");
	q[63 * PAGE] = 1;

	/* Move to a place we reserved, so MREMAP_FIXED cannot clobber others. */
	unsigned char *target = map_anon(64 * PAGE, PROT_NONE);
	unsigned char *r = mremap(q, 64 * PAGE, 64 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	printf("mremap fixed lands at target: %s\n", r == target ? "yes" : "no");
	printf("moved data: %s, old range gone: %s\n",
	       r[7] == 49 && r[63 * PAGE] == 1 ? "yes" : "no", mapped(q, PAGE) ? "no" : "yes");

	r = mremap(r, 64 * PAGE, 2 * PAGE, 0);
	printf("mremap shrink in place: %s, tail gone: %s\n", r == target ? "yes" : "no",
	       mapped(target + 2 * PAGE, PAGE) ? "no" : "yes");
	SHOW("mremap bad address", (long)mremap(q, PAGE, 2 * PAGE, MREMAP_MAYMOVE));
	CHECK(munmap(r, 2 * PAGE) == 0);
}

static void file_maps(const char *dir)
{
	CHECK(chdir(dir) == 0);
	int fd = open("m.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	char page[PAGE];
	for (size_t i = 0; i < PAGE; i++)
		page[i] = 'a' + i % 26;
	CHECK(write(fd, page, PAGE) == (ssize_t)PAGE);
	CHECK(write(fd, "tail", 4) == 4);

	/* Private: sees the file, writes stay private. */
	char *pv = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(pv != MAP_FAILED);
	printf("private sees file: %s\n",
	       memcmp(pv, page, PAGE) == 0 && memcmp(pv + PAGE, "tail", 4) == 0 ? "yes" : "no");
	printf("past EOF in last page is zero: %s\n",
	       all_bytes((unsigned char *)pv + PAGE + 4, PAGE - 4, 0) ? "yes" : "no");
	pv[0] = 'X';
	char c;
	CHECK(pread(fd, &c, 1, 0) == 1);
	printf("private write hidden from file: %s\n", c == 'a' ? "yes" : "no");

	/* Shared: a write through the mapping reaches read(), and a write()
	 * reaches the mapping. */
	char *sh = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(sh != MAP_FAILED);
	memcpy(sh + 100, "SHARED", 6);
	SHOW("msync", msync(sh, PAGE, MS_SYNC));
	char back[7] = {0};
	CHECK(pread(fd, back, 6, 100) == 6);
	printf("read() sees shared write: %s\n", back);
	CHECK(pwrite(fd, "written", 7, 200) == 7);
	printf("mapping sees write(): %.7s\n", sh + 200);
	printf("private copy unaffected: %s\n", pv[200] == page[200] ? "yes" : "no");

	/* Offset mapping of the second page. */
	char *off = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, PAGE);
	CHECK(off != MAP_FAILED);
	printf("offset mapping: %.4s\n", off);
	SHOW("mmap unaligned offset", (long)mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 1));
	int ro = open("m.bin", O_RDONLY);
	CHECK(ro >= 0);
	SHOW("mmap shared writable on O_RDONLY fd",
	     (long)mmap(NULL, PAGE, PROT_WRITE, MAP_SHARED, ro, 0));
	CHECK(close(ro) == 0);

	CHECK(munmap(pv, 2 * PAGE) == 0 && munmap(sh, PAGE) == 0 && munmap(off, PAGE) == 0);
	CHECK(close(fd) == 0 && unlink("m.bin") == 0);
}

static long raw_brk(uintptr_t addr)
{
	return syscall(SYS_brk, addr);
}

/* Raw brk, not sbrk/malloc: the point is the syscall's contract. */
static void heap(void)
{
	const uintptr_t step = 1UL << 20, total = 256UL << 20;
	uintptr_t base = raw_brk(0);
	printf("initial brk page aligned: %s\n", base % PAGE == 0 ? "yes" : "no");

	for (uintptr_t size = step; size <= total; size += step) {
		CHECK((uintptr_t)raw_brk(base + size) == base + size);
		for (uintptr_t pg = size - step; pg < size; pg += PAGE) {
			uint64_t *w = (uint64_t *)(base + pg);
			CHECK(*w == 0);
			*w = pg ^ 0x5a5a5a5a;
		}
	}
	int ok = 1;
	for (uintptr_t pg = 0; pg < total; pg += PAGE)
		ok &= *(uint64_t *)(base + pg) == (pg ^ 0x5a5a5a5a);
	printf("grew to 256 MiB, every page kept its value: %s\n", ok ? "yes" : "no");

	/* A failed brk returns the current break, not an error. */
	printf("brk below start refused: %s\n", (uintptr_t)raw_brk(base - PAGE) == base + total ? "yes" : "no");

	CHECK((uintptr_t)raw_brk(base + total / 2) == base + total / 2);
	printf("shrunk tail unmapped: %s\n", mapped((void *)(base + total / 2), PAGE) ? "no" : "yes");
	CHECK((uintptr_t)raw_brk(base + total) == base + total);
	ok = 1;
	for (uintptr_t pg = total / 2; pg < total; pg += PAGE)
		ok &= *(uint64_t *)(base + pg) == 0;
	printf("regrown pages are zero: %s\n", ok ? "yes" : "no");
	ok = 1;
	for (uintptr_t pg = 0; pg < total / 2; pg += PAGE)
		ok &= *(uint64_t *)(base + pg) == (pg ^ 0x5a5a5a5a);
	printf("kept half intact: %s\n", ok ? "yes" : "no");

	/* An unaligned break rounds the mapping up to the page. */
	CHECK((uintptr_t)raw_brk(base + 100) == base + 100);
	*(volatile char *)(base + PAGE - 1) = 1;
	printf("unaligned brk maps the whole page: yes\n");
	CHECK((uintptr_t)raw_brk(base) == base);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (MODE("mmap") && argc == 3) {
		anon();
		remap();
		file_maps(argv[2]);
	} else if (MODE("brk")) {
		heap();
	} else if (MODE("ro-write")) {
		volatile char *p = map_anon(PAGE, PROT_READ);
		printf("reading: %d\n", p[0]);
		p[0] = 1;
	} else if (MODE("after-munmap")) {
		volatile char *p = map_anon(2 * PAGE, PROT_READ | PROT_WRITE);
		p[PAGE] = 1;
		CHECK(munmap((void *)p, 2 * PAGE) == 0);
		printf("touching unmapped page\n");
		p[PAGE] = 2;
	} else if (MODE("stale-tlb")) {
		volatile char *p = map_anon(PAGE, PROT_READ | PROT_WRITE);
		p[0] = 1;
		CHECK(mprotect((void *)p, PAGE, PROT_READ) == 0);
		printf("read after mprotect: %d\n", p[0]);
		p[0] = 2;
	} else {
		fprintf(stderr, "usage: mem mmap DIR|brk|ro-write|after-munmap|stale-tlb\n");
		return 2;
	}
	printf("done\n");
	return 0;
}
