/* robust MODE: robust futexes released at thread exit.
 *   mutexes   - robust mutexes, private and process-shared, plain and
 *               priority-inheriting: an owner thread exits holding the
 *               lock (EOWNERDEAD for the next locker, ENOTRECOVERABLE
 *               unless made consistent), also while another thread waits
 *               for it (the waiter gets EOWNERDEAD)
 *   past-eof  - a thread registers a robust list whose futex word lies in
 *               a MAP_SHARED page past the end of its file, then exits:
 *               the kernel skips the word and the program goes on
 *   unmapped  - the same with the word in an unmapped page, and with the
 *               list's next pointer in one; a word in a read-only page,
 *               also one the thread owns (readable, not writable: left
 *               as it was) */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static void check_eq(const char *what, int got, int want)
{
	if (got != want) {
		fprintf(stderr, "%s: got %s, want %s\n", what, errno_name(got), errno_name(want));
		exit(1);
	}
}

static void *lock_and_exit(void *m)
{
	check_eq("lock in thread", pthread_mutex_lock(m), 0);
	return NULL;
}

struct waiter_args {
	pthread_barrier_t *barrier;
	pthread_mutex_t *m;
};

/* Takes the lock, lets main start waiting for it, then exits holding it. */
static void *lock_wait_exit(void *arg)
{
	struct waiter_args *a = arg;
	check_eq("lock in thread", pthread_mutex_lock(a->m), 0);
	pthread_barrier_wait(a->barrier);
	nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	return NULL;
}

static void run(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int e = pthread_create(t, NULL, fn, arg);
	check_eq("pthread_create", e, 0);
}

static void mutexes(int pshared, int pi)
{
	pthread_mutexattr_t attr;
	pthread_mutex_t m;
	pthread_t t;
	check_eq("attr init", pthread_mutexattr_init(&attr), 0);
	check_eq("setrobust", pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST), 0);
	if (pshared)
		check_eq("setpshared", pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED), 0);
	if (pi)
		check_eq("setprotocol", pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT), 0);

	/* Orphaned and left inconsistent: not recoverable. */
	check_eq("init", pthread_mutex_init(&m, &attr), 0);
	check_eq("lock", pthread_mutex_lock(&m), 0);
	check_eq("unlock", pthread_mutex_unlock(&m), 0);
	run(&t, lock_and_exit, &m);
	pthread_join(t, NULL);
	check_eq("lock orphaned", pthread_mutex_lock(&m), EOWNERDEAD);
	check_eq("unlock orphaned", pthread_mutex_unlock(&m), 0);
	check_eq("lock unrecoverable", pthread_mutex_lock(&m), ENOTRECOVERABLE);
	check_eq("destroy", pthread_mutex_destroy(&m), 0);

	/* Orphaned, then made consistent: usable again. */
	check_eq("init", pthread_mutex_init(&m, &attr), 0);
	run(&t, lock_and_exit, &m);
	pthread_join(t, NULL);
	check_eq("lock orphaned", pthread_mutex_lock(&m), EOWNERDEAD);
	check_eq("consistent", pthread_mutex_consistent(&m), 0);
	check_eq("unlock", pthread_mutex_unlock(&m), 0);
	check_eq("relock", pthread_mutex_lock(&m), 0);
	check_eq("unlock", pthread_mutex_unlock(&m), 0);
	check_eq("destroy", pthread_mutex_destroy(&m), 0);

	/* The owner exits while this thread waits for the lock. */
	pthread_barrier_t barrier;
	check_eq("barrier", pthread_barrier_init(&barrier, NULL, 2), 0);
	check_eq("init", pthread_mutex_init(&m, &attr), 0);
	struct waiter_args a = { &barrier, &m };
	run(&t, lock_wait_exit, &a);
	pthread_barrier_wait(&barrier);
	check_eq("lock while owner exits", pthread_mutex_lock(&m), EOWNERDEAD);
	pthread_join(t, NULL);
	check_eq("consistent", pthread_mutex_consistent(&m), 0);
	check_eq("unlock", pthread_mutex_unlock(&m), 0);
	check_eq("destroy", pthread_mutex_destroy(&m), 0);
	pthread_barrier_destroy(&barrier);
	printf("pshared %d pi %d: EOWNERDEAD, ENOTRECOVERABLE, consistent, waiter woken\n", pshared, pi);
}

/* The kernel's struct robust_list_head, with one entry after it. */
struct robust {
	uintptr_t next;
	long futex_offset;
	uintptr_t pending;
	uintptr_t entry_next;
};

static struct robust list;

static void *register_and_exit(void *arg)
{
	(void)arg;
	long r = syscall(SYS_set_robust_list, &list, 3 * sizeof(long));
	CHECK(r == 0);
	return NULL;
}

static volatile unsigned *owned;
static unsigned owner_tid;

/* Owns `owned`, makes it read-only, registers `list`, exits. */
static void *own_read_only_and_exit(void *arg)
{
	owner_tid = (unsigned)syscall(SYS_gettid);
	*owned = owner_tid | 0x80000000u;
	owner_tid |= 0x80000000u;
	CHECK(mprotect((void *)owned, PAGE, PROT_READ) == 0);
	return register_and_exit(arg);
}

/* A thread exits with `list` registered; the program must go on. */
static void exit_with_list(const char *what)
{
	pthread_t t;
	run(&t, register_and_exit, NULL);
	pthread_join(t, NULL);
	printf("%s: survived\n", what);
}

static void past_eof(void)
{
	int fd = open("file", O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, "x", 1) == 1);
	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	/* One entry, whose futex word is in the second page: past EOF. */
	list.next = (uintptr_t)&list.entry_next;
	list.entry_next = (uintptr_t)&list;
	list.futex_offset = (long)((uintptr_t)(p + PAGE) - (uintptr_t)&list.entry_next);
	exit_with_list("word past EOF");
	/* The same word as the pending operation. */
	list.next = (uintptr_t)&list;
	list.pending = (uintptr_t)&list.entry_next;
	exit_with_list("pending word past EOF");
	list.pending = 0;
	/* The entry itself past EOF. */
	list.next = (uintptr_t)(p + PAGE);
	list.futex_offset = 0;
	exit_with_list("entry past EOF");
	CHECK(munmap(p, 2 * PAGE) == 0);
	close(fd);
}

static void unmapped(void)
{
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	CHECK(munmap(p, PAGE) == 0);
	list.next = (uintptr_t)&list.entry_next;
	list.entry_next = (uintptr_t)&list;
	list.futex_offset = (long)((uintptr_t)p - (uintptr_t)&list.entry_next);
	exit_with_list("word unmapped");
	list.next = (uintptr_t)p;
	list.futex_offset = 0;
	exit_with_list("entry unmapped");
	/* A word in a read-only page: the kernel cannot mark it either. */
	char *ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro != MAP_FAILED);
	list.next = (uintptr_t)&list.entry_next;
	list.futex_offset = (long)((uintptr_t)ro - (uintptr_t)&list.entry_next);
	exit_with_list("word read-only");
	CHECK(munmap(ro, PAGE) == 0);
	/* A read-only word the dying thread owns: it can be read but not
	 * marked, so the kernel stops there and leaves it as it was. */
	owned = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(owned != MAP_FAILED);
	list.futex_offset = (long)((uintptr_t)owned - (uintptr_t)&list.entry_next);
	pthread_t t;
	run(&t, own_read_only_and_exit, NULL);
	pthread_join(t, NULL);
	printf("owned word read-only: unchanged %s\n", yes(*owned == owner_tid));
	CHECK(munmap((void *)owned, PAGE) == 0);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (MODE("mutexes")) {
		for (int pshared = 0; pshared <= 1; pshared++)
			for (int pi = 0; pi <= 1; pi++)
				mutexes(pshared, pi);
	} else if (MODE("past-eof")) {
		past_eof();
	} else if (MODE("unmapped")) {
		unmapped();
	} else {
		fprintf(stderr, "usage: robust mutexes|past-eof|unmapped\n");
		return 2;
	}
	return 0;
}
