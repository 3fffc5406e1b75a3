/* System V shared memory: private segments attached at the kernel's (or
 * km's) choice and at chosen addresses, read-only, detached, shared with a
 * forked child, removed while attached, with wild pointers to shmctl.
 * Every segment is removed at exit, failure paths included.
 *
 *   (none)  - everything compared with the native run
 *   monitor - shmat at addresses outside km's payload memory: its monitor
 *             area, below its window (km only) */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define SIZE 10000 /* three pages once rounded */
#define PAGE 4096ul

static int ids[4] = { -1, -1, -1, -1 };

static void remove_segments(void)
{
	for (int i = 0; i < 4; i++)
		if (ids[i] >= 0)
			shmctl(ids[i], IPC_RMID, 0);
}

static int segment(int slot, size_t size)
{
	ids[slot] = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
	CHECK(ids[slot] >= 0);
	return ids[slot];
}

static const char *err(long r)
{
	return r < 0 ? errno_name(errno) : "ok";
}

static const char *attach_err(void *p)
{
	return p == (void *)-1 ? errno_name(errno) : "ok";
}

static sigjmp_buf recover;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(recover, 1);
}

/* "ok" if a byte of p can be written, else "SIGSEGV". */
static const char *try_write(volatile char *p)
{
	if (sigsetjmp(recover, 1) == 0) {
		*p = 'x';
		return "ok";
	}
	return "SIGSEGV";
}

static const char *try_read(volatile char *p)
{
	if (sigsetjmp(recover, 1) == 0) {
		(void)*p;
		return "ok";
	}
	return "SIGSEGV";
}

static unsigned long nattch(int id)
{
	struct shmid_ds ds;
	CHECK(shmctl(id, IPC_STAT, &ds) == 0);
	return (unsigned long)ds.shm_nattch;
}

/* The permissions and name of the /proc/self/maps line starting at p. */
static void show_map(const char *label, void *p)
{
	char want[32], line[512];
	snprintf(want, sizeof want, "%lx-", (unsigned long)p);
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL);
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, want, strlen(want)) != 0)
			continue;
		char perms[8], name[256] = "";
		CHECK(sscanf(line, "%*s %7s %*s %*s %*s %255[^\n]", perms, name) >= 1);
		printf("%s: %s %s\n", label, perms, name);
		fclose(f);
		return;
	}
	printf("%s: not mapped\n", label);
	fclose(f);
}

/* A free, page-aligned range of n pages the process may use. */
static char *free_range(size_t n)
{
	char *p = mmap(0, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	CHECK(munmap(p, n * PAGE) == 0);
	return p;
}

static void attach_and_share(int id)
{
	char *p = shmat(id, 0, 0), *q = shmat(id, 0, 0);
	CHECK(p != (void *)-1 && q != (void *)-1);
	printf("two attachments at different places: %s, page aligned: %s\n", yes(p != q),
	       yes(((uintptr_t)p | (uintptr_t)q) % PAGE == 0));
	strcpy(p, "written through p");
	strcpy(q + SIZE - 8, "tail");
	printf("q sees: %s, p's tail: %s, nattch: %lu\n", q, p + SIZE - 8, nattch(id));
	show_map("maps", p);
	/* The last page is whole: the segment is page-rounded. */
	printf("last page byte: %s\n", try_write(p + 3 * PAGE - 1));

	char *at = free_range(4);
	printf("at a chosen address: %s\n", yes(shmat(id, at, 0) == at));
	printf("same bytes there: %s\n", yes(strcmp(at, "written through p") == 0));
	printf("over it again: %s\n", attach_err(shmat(id, at, 0)));
	printf("over it with SHM_REMAP: %s\n", yes(shmat(id, at, SHM_REMAP) == at));
	printf("unaligned: %s\n", attach_err(shmat(id, at + 1, 0)));
	CHECK(shmdt(at) == 0);
	printf("unaligned with SHM_RND: %s\n", yes(shmat(id, at + 100, SHM_RND) == at));
	printf("shmdt inside it: %s, unaligned: %s\n", err(shmdt(at + PAGE)), err(shmdt(at + 1)));
	CHECK(shmdt(at) == 0);
	printf("shmdt twice: %s\n", err(shmdt(at)));
	printf("shmdt of anonymous memory: %s\n", err(shmdt(free_range(1))));
	char *anon = mmap(0, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(anon != MAP_FAILED);
	printf("shmdt of a mapping: %s\n", err(shmdt(anon)));
	printf("over a mapping: %s\n", attach_err(shmat(id, anon, 0)));
	printf("over a mapping with SHM_REMAP: %s, ", yes(shmat(id, anon, SHM_REMAP) == anon));
	printf("sees: %s\n", anon);
	CHECK(shmdt(anon) == 0);
	printf("after shmdt there: %s\n", try_read(anon));
	printf("SHM_REMAP without address: %s\n", attach_err(shmat(id, 0, SHM_REMAP)));
	printf("past the top of user space: %s\n", attach_err(shmat(id, (void *)0x7ffffffff000ul, 0)));
	printf("bad id: %s\n", attach_err(shmat(-1, 0, 0)));

	char *r = shmat(id, 0, SHM_RDONLY);
	CHECK(r != (void *)-1);
	printf("read-only: reads %s, write: %s\n", r, try_write(r));
	show_map("read-only maps", r);
	printf("mprotect it writable: %s\n", err(mprotect(r, PAGE, PROT_READ | PROT_WRITE)));
	printf("IPC_STAT into it: %s\n", err(shmctl(id, IPC_STAT, (struct shmid_ds *)r)));
	CHECK(shmdt(r) == 0);
	char *x = shmat(id, 0, SHM_EXEC), *rx = shmat(id, 0, SHM_EXEC | SHM_RDONLY);
	CHECK(x != (void *)-1 && rx != (void *)-1);
	show_map("SHM_EXEC maps", x);
	show_map("SHM_EXEC|SHM_RDONLY maps", rx);
	CHECK(shmdt(x) == 0 && shmdt(rx) == 0);

	/* munmap detaches too. */
	char *m = shmat(id, 0, 0);
	CHECK(m != (void *)-1);
	printf("nattch before munmap: %lu\n", nattch(id));
	CHECK(munmap(m, 3 * PAGE) == 0);
	printf("after: %lu, ", nattch(id));
	printf("shmdt there: %s\n", err(shmdt(m)));

	CHECK(shmdt(p) == 0);
	printf("after shmdt: read %s, nattch %lu\n", try_read(p), nattch(id));

	/* shmdt takes every piece of a split attachment, found from its start
	 * even when the first page is gone. */
	char *s = shmat(id, 0, 0);
	CHECK(s != (void *)-1);
	CHECK(munmap(s + PAGE, PAGE) == 0);
	CHECK(mprotect(s + 2 * PAGE, PAGE, PROT_READ) == 0);
	printf("split: nattch %lu, ", nattch(id));
	printf("shmdt %s, ", err(shmdt(s)));
	printf("first page %s, ", try_read(s));
	printf("last page %s, nattch %lu\n", try_read(s + 2 * PAGE), nattch(id));
	s = shmat(id, 0, 0);
	CHECK(s != (void *)-1);
	CHECK(munmap(s, PAGE) == 0);
	printf("without its first page: shmdt inside %s, ", err(shmdt(s + PAGE)));
	printf("shmdt %s, ", err(shmdt(s)));
	printf("rest %s, nattch %lu\n", try_read(s + 2 * PAGE), nattch(id));
	/* mremap keeps it an attachment, where it began moving with it. */
	s = shmat(id, 0, 0);
	CHECK(s != (void *)-1);
	char *to = free_range(3);
	CHECK(mremap(s, 3 * PAGE, 3 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to) == to);
	printf("moved: sees %s, ", to);
	printf("shmdt old %s, ", err(shmdt(s)));
	printf("new %s, ", err(shmdt(to)));
	printf("nattch %lu\n", nattch(id));

	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		strcpy(q, "from the child");
		_exit(shmdt(q) == 0 ? 0 : 1);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	printf("child exited %d; parent sees: %s, nattch %lu\n", WEXITSTATUS(status), q, nattch(id));

	printf("IPC_RMID while attached: %s\n", err(shmctl(id, IPC_RMID, 0)));
	struct shmid_ds ds;
	const char *stat = err(shmctl(id, IPC_STAT, &ds));
	printf("still there: %s, nattch %lu\n", stat, (unsigned long)ds.shm_nattch);
	strcpy(q, "after removal");
	char *again = shmat(id, 0, 0);
	printf("attach again: %s, sees: %s\n", attach_err(again), again == (void *)-1 ? "-" : again);
	if (again != (void *)-1)
		CHECK(shmdt(again) == 0);
	CHECK(shmdt(q) == 0);
	printf("once detached: %s\n", err(shmctl(id, IPC_STAT, &ds)));
	ids[0] = -1;
}

static void control(int id)
{
	void *wild = (void *)0x7fc0001000ul;
	struct shmid_ds ds;
	CHECK(shmctl(id, IPC_STAT, &ds) == 0);
	printf("segsz %lu, mode %o, nattch %lu\n", (unsigned long)ds.shm_segsz, ds.shm_perm.mode & 0777,
	       (unsigned long)ds.shm_nattch);
	ds.shm_perm.mode = 0640;
	CHECK(shmctl(id, IPC_SET, &ds) == 0);
	CHECK(shmctl(id, IPC_STAT, &ds) == 0);
	printf("after IPC_SET: mode %o\n", ds.shm_perm.mode & 0777);
	struct shminfo info;
	long max = shmctl(id, IPC_INFO, (struct shmid_ds *)&info);
	printf("IPC_INFO: %s, shmmin %lu\n", err(max), (unsigned long)info.shmmin);
	struct shm_info used;
	printf("SHM_INFO: %s\n", err(shmctl(id, SHM_INFO, (struct shmid_ds *)&used)));
	printf("SHM_LOCK: %s, SHM_UNLOCK: %s\n", err(shmctl(id, SHM_LOCK, 0)), err(shmctl(id, SHM_UNLOCK, 0)));
	printf("wild: stat %s set %s info %s shm_info %s no index %s\n",
	       err(syscall(SYS_shmctl, id, IPC_STAT, wild)), err(syscall(SYS_shmctl, id, IPC_SET, wild)),
	       err(syscall(SYS_shmctl, id, IPC_INFO, wild)), err(syscall(SYS_shmctl, id, SHM_INFO, wild)),
	       err(syscall(SYS_shmctl, 0x7fffffff, SHM_STAT_ANY, wild)));
	printf("bad id, wild: stat %s set %s\n", err(syscall(SYS_shmctl, -1, IPC_STAT, wild)),
	       err(syscall(SYS_shmctl, -1, IPC_SET, wild)));
	printf("IPC_STAT|IPC_64: %s\n", err(syscall(SYS_shmctl, id, IPC_STAT | 0x100, &ds)));
	printf("unknown command: %s\n", err(syscall(SYS_shmctl, id, 99, wild)));
}

/* Threads attaching, writing, reading and detaching at once: each sees
 * its own bytes through its own attachments, and every one is detached. */
static void *churn(void *arg)
{
	int id = ids[3];
	long me = (long)arg;
	for (int i = 0; i < 200; i++) {
		char *a = shmat(id, 0, 0), *b = shmat(id, 0, SHM_RDONLY);
		if (a == (void *)-1 || b == (void *)-1)
			return (void *)1;
		a[me * PAGE] = (char)i;
		int same = b[me * PAGE] == (char)i;
		if (!same || shmdt(a) != 0 || shmdt(b) != 0)
			return (void *)1;
	}
	return NULL;
}

static void threads(void)
{
	segment(3, 4 * PAGE);
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, churn, (void *)i) == 0);
	int bad = 0;
	for (int i = 0; i < 4; i++) {
		void *r;
		CHECK(pthread_join(t[i], &r) == 0);
		bad += r != NULL;
	}
	printf("threads: %d failed, nattch %lu\n", bad, nattch(ids[3]));
}

/* A segment larger than the address-space limit cannot be attached. */
static void limit(void)
{
	int big = segment(2, 1ul << 30);
	struct rlimit old, low;
	CHECK(getrlimit(RLIMIT_AS, &old) == 0);
	low = old;
	low.rlim_cur = 512ul << 20;
	CHECK(setrlimit(RLIMIT_AS, &low) == 0);
	printf("1 GiB segment under a 512 MiB RLIMIT_AS: %s\n", attach_err(shmat(big, 0, 0)));
	CHECK(setrlimit(RLIMIT_AS, &old) == 0);
	char *p = shmat(big, 0, SHM_RDONLY);
	printf("without the limit: %s\n", attach_err(p));
	CHECK(p != (void *)-1 && shmdt(p) == 0);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	atexit(remove_segments);
	struct sigaction sa = { .sa_handler = on_segv };
	CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
	if (MODE("monitor")) {
		int id = segment(0, SIZE);
		void *monitor = (void *)0x7fc0000000ul;
		printf("in the monitor area: %s\n", attach_err(shmat(id, monitor, 0)));
		printf("with SHM_REMAP: %s\n", attach_err(shmat(id, monitor, SHM_REMAP)));
		printf("across the payload's end: %s\n", attach_err(shmat(id, (char *)monitor - PAGE, SHM_REMAP)));
		printf("below the window: %s\n", attach_err(shmat(id, (void *)0x100000ul, 0)));
		printf("SHM_RND down to 0: %s\n", attach_err(shmat(id, (void *)100ul, SHM_RND)));
		return 0;
	}
	control(segment(1, SIZE));
	attach_and_share(segment(0, SIZE));
	limit();
	threads();
	printf("done\n");
	return 0;
}
