/* threads MODE: POSIX threads (musl's pthreads over clone, futex and, for
 * cancellation, a signal). Prints only counts and outcomes that do not
 * depend on scheduling.
 *   mutex       - 8 threads increment a counter under a mutex
 *   condvar     - bounded queue: one producer, three consumers
 *   barrier     - 4 threads, 10 rounds; each round sees every slot written
 *   tls         - __thread variables: initial image, per-thread values
 *   cancel      - deferred cancellation in read, nanosleep, testcancel
 *   detached    - detached threads run and clean up after themselves
 *   many        - 250 threads alive at once, meeting at one barrier
 *   exit-early  - a thread exits while the others keep running
 *   main-exits  - main calls pthread_exit; the last thread ends the process
 *   exit-group  - exit(7) from a thread while others block in read, a
 *                 condvar wait and nanosleep: status 7
 *   clone3      - a raw clone3 thread (its own stack, SETTID/CLEARTID),
 *                 joined through its cleared tid word */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int e = pthread_create(t, NULL, fn, arg);
	errno = e;
	CHECK(e == 0);
}

static void *join(pthread_t t)
{
	void *ret;
	CHECK(pthread_join(t, &ret) == 0);
	return ret;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *increment(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100000; i++) {
		pthread_mutex_lock(&lock);
		counter++;
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static void mutex(void)
{
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		start(&t[i], increment, NULL);
	for (int i = 0; i < 8; i++)
		join(t[i]);
	printf("counter %ld\n", counter);
}

/* A four-slot ring; 0 is the end marker (one per consumer). */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	long items[4];
	int head, count;
} queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	   PTHREAD_COND_INITIALIZER, {0}, 0, 0};

static void put(long v)
{
	pthread_mutex_lock(&queue.lock);
	while (queue.count == 4)
		pthread_cond_wait(&queue.not_full, &queue.lock);
	queue.items[(queue.head + queue.count++) % 4] = v;
	pthread_cond_signal(&queue.not_empty);
	pthread_mutex_unlock(&queue.lock);
}

static long take(void)
{
	pthread_mutex_lock(&queue.lock);
	while (queue.count == 0)
		pthread_cond_wait(&queue.not_empty, &queue.lock);
	long v = queue.items[queue.head];
	queue.head = (queue.head + 1) % 4;
	queue.count--;
	pthread_cond_signal(&queue.not_full);
	pthread_mutex_unlock(&queue.lock);
	return v;
}

struct tally {
	long sum, n;
};

static void *consume(void *arg)
{
	struct tally *t = arg;
	for (long v; (v = take()) != 0; t->n++)
		t->sum += v;
	return NULL;
}

static void condvar(void)
{
	pthread_t t[3];
	struct tally tally[3] = {{0, 0}};
	for (int i = 0; i < 3; i++)
		start(&t[i], consume, &tally[i]);
	for (long v = 1; v <= 10000; v++)
		put(v);
	for (int i = 0; i < 3; i++)
		put(0);
	long sum = 0, n = 0;
	for (int i = 0; i < 3; i++) {
		join(t[i]);
		sum += tally[i].sum;
		n += tally[i].n;
	}
	printf("consumed %ld items, sum %ld\n", n, sum);
}

#define ROUNDS 10
#define PARTIES 4
static pthread_barrier_t barrier;
static int slots[ROUNDS][PARTIES];
static int serial_count, missing;

static void *rounds(void *arg)
{
	int me = (int)(intptr_t)arg;
	for (int r = 0; r < ROUNDS; r++) {
		slots[r][me] = r * PARTIES + me + 1;
		int s = pthread_barrier_wait(&barrier);
		CHECK(s == 0 || s == PTHREAD_BARRIER_SERIAL_THREAD);
		for (int i = 0; i < PARTIES; i++)
			if (slots[r][i] != r * PARTIES + i + 1)
				__atomic_add_fetch(&missing, 1, __ATOMIC_RELAXED);
		if (s == PTHREAD_BARRIER_SERIAL_THREAD)
			__atomic_add_fetch(&serial_count, 1, __ATOMIC_RELAXED);
		/* Nobody may start writing round r+1 before all checked r:
		 * slots are per round, so no second wait is needed. */
	}
	return NULL;
}

static void barrier_rounds(void)
{
	pthread_t t[PARTIES];
	CHECK(pthread_barrier_init(&barrier, NULL, PARTIES) == 0);
	for (int i = 0; i < PARTIES; i++)
		start(&t[i], rounds, (void *)(intptr_t)i);
	for (int i = 0; i < PARTIES; i++)
		join(t[i]);
	printf("rounds %d, serial threads %d, missing slots %d\n", ROUNDS,
	       serial_count, missing);
}

static __thread int tls_data = 42;   /* .tdata */
static __thread long tls_zero[64];    /* .tbss */

static void *tls_check(void *arg)
{
	int me = (int)(intptr_t)arg;
	int ok = tls_data == 42;
	for (int i = 0; i < 64; i++)
		ok &= tls_zero[i] == 0;
	tls_data = me;
	for (int i = 0; i < 64; i++)
		tls_zero[i] = me * 1000 + i;
	sched_yield();
	ok &= tls_data == me;
	for (int i = 0; i < 64; i++)
		ok &= tls_zero[i] == me * 1000 + i;
	return (void *)(intptr_t)ok;
}

static void tls(void)
{
	tls_data = -1;
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		start(&t[i], tls_check, (void *)(intptr_t)(i + 1));
	int ok = 0;
	for (int i = 0; i < 8; i++)
		ok += (int)(intptr_t)join(t[i]);
	printf("threads with a fresh, private TLS block: %d of 8\n", ok);
	printf("main's value untouched: %s\n", yes(tls_data == -1));
}

static int pipe_fds[2];
static int cleanups[3];

static void note_cleanup(void *arg)
{
	cleanups[(intptr_t)arg] = 1;
}

static void *block_in_read(void *arg)
{
	pthread_cleanup_push(note_cleanup, arg);
	char c;
	read(pipe_fds[0], &c, 1);
	pthread_cleanup_pop(0);
	return NULL;
}

static void *block_in_nanosleep(void *arg)
{
	pthread_cleanup_push(note_cleanup, arg);
	struct timespec long_time = {100000, 0};
	nanosleep(&long_time, NULL);
	pthread_cleanup_pop(0);
	return NULL;
}

static void *spin_testcancel(void *arg)
{
	pthread_cleanup_push(note_cleanup, arg);
	for (;;)
		pthread_testcancel();
	pthread_cleanup_pop(0);
	return NULL;
}

static void cancel(void)
{
	static const char *const where[] = {"read", "nanosleep", "testcancel"};
	void *(*const fns[])(void *) = {block_in_read, block_in_nanosleep,
					spin_testcancel};
	CHECK(pipe(pipe_fds) == 0);
	for (int i = 0; i < 3; i++) {
		pthread_t t;
		start(&t, fns[i], (void *)(intptr_t)i);
		CHECK(pthread_cancel(t) == 0);
		void *ret = join(t);
		printf("cancel in %s: %s, cleanup ran: %s\n", where[i],
		       ret == PTHREAD_CANCELED ? "canceled" : "returned",
		       yes(cleanups[i]));
	}
	/* With cancellation disabled the request waits for re-enabling. */
	int old;
	CHECK(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old) == 0);
	CHECK(pthread_cancel(pthread_self()) == 0);
	struct timespec ms = {0, 1000000};
	CHECK(nanosleep(&ms, NULL) == 0);
	printf("survived a cancellation point while disabled: yes\n");
}

static sem_t finished;
static int detached_ran;

static void *detached_body(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&detached_ran, 1, __ATOMIC_RELAXED);
	sem_post(&finished);
	return NULL;
}

static void detached(void)
{
	CHECK(sem_init(&finished, 0, 0) == 0);
	pthread_attr_t attr;
	CHECK(pthread_attr_init(&attr) == 0);
	CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0);
	/* Rounds, so later threads reuse what exited ones gave back. */
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 16; i++) {
			pthread_t t;
			errno = pthread_create(&t, &attr, detached_body, NULL);
			CHECK(errno == 0);
		}
		for (int i = 0; i < 16; i++)
			while (sem_wait(&finished) != 0)
				CHECK(errno == EINTR);
	}
	printf("detached threads ran: %d\n", detached_ran);
}

#define MANY 250
static pthread_barrier_t all_alive;
static int arrived[MANY];

static void *arrive(void *arg)
{
	int me = (int)(intptr_t)arg;
	pthread_barrier_wait(&all_alive);
	arrived[me] = me + 1;
	return NULL;
}

static void many(void)
{
	static pthread_t t[MANY];
	pthread_attr_t attr;
	CHECK(pthread_attr_init(&attr) == 0);
	CHECK(pthread_attr_setstacksize(&attr, 64 * 1024) == 0);
	CHECK(pthread_barrier_init(&all_alive, NULL, MANY + 1) == 0);
	for (int i = 0; i < MANY; i++) {
		errno = pthread_create(&t[i], &attr, arrive, (void *)(intptr_t)i);
		CHECK(errno == 0);
	}
	pthread_barrier_wait(&all_alive);
	long sum = 0;
	for (int i = 0; i < MANY; i++) {
		join(t[i]);
		sum += arrived[i];
	}
	printf("%d threads met at the barrier, sum %ld\n", MANY, sum);
}

static volatile int keep_going = 1;

static void *early_exit(void *arg)
{
	(void)arg;
	pthread_exit((void *)7);
}

static void *busy(void *arg)
{
	unsigned long n = (uintptr_t)arg;
	while (keep_going)
		n = n * 6364136223846793005UL + 1;
	return (void *)(n & 0);
}

static void exit_early(void)
{
	pthread_t b[2], e;
	start(&b[0], busy, (void *)1);
	start(&b[1], busy, (void *)2);
	start(&e, early_exit, NULL);
	printf("early thread's value: %ld\n", (long)(intptr_t)join(e));
	keep_going = 0;
	join(b[0]);
	join(b[1]);
	printf("busy threads finished after it\n");
}

static void *outlive_main(void *arg)
{
	(void)arg;
	struct timespec ms = {0, 20000000};
	nanosleep(&ms, NULL);
	printf("worker finished after main\n");
	return NULL;
}

static void main_exits(void)
{
	pthread_t t;
	start(&t, outlive_main, NULL);
	printf("main calls pthread_exit\n");
	fflush(stdout);
	pthread_exit(NULL);
}

static pthread_barrier_t blockers_ready;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;

static void *blocked_read(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&blockers_ready);
	char c;
	read(pipe_fds[0], &c, 1);
	printf("read returned\n");
	return NULL;
}

static void *blocked_condvar(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	pthread_barrier_wait(&blockers_ready);
	for (;;)
		pthread_cond_wait(&never, &lock);
	return NULL;
}

static void *blocked_sleep(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&blockers_ready);
	struct timespec long_time = {100000, 0};
	nanosleep(&long_time, NULL);
	printf("nanosleep returned\n");
	return NULL;
}

static void *exiter(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&blockers_ready);
	/* Give the others time to block; the outcome is the same if not. */
	struct timespec ms = {0, 10000000};
	nanosleep(&ms, NULL);
	printf("exiting with 7\n");
	exit(7);
}

static void exit_group(void)
{
	CHECK(pipe(pipe_fds) == 0);
	CHECK(pthread_barrier_init(&blockers_ready, NULL, 4) == 0);
	pthread_t t[4];
	start(&t[0], blocked_read, NULL);
	start(&t[1], blocked_condvar, NULL);
	start(&t[2], blocked_sleep, NULL);
	start(&t[3], exiter, NULL);
	join(t[0]);
	printf("main: join returned\n");
}

/* clone3 by hand: the child runs only the assembly below on its own
 * stack (it has no TLS of its own), stores 42 and exits. */
#define FUTEX_WAIT 0 /* linux/futex.h is not visible to musl-gcc */

static volatile int clone3_flag;
static volatile pid_t clone3_ptid, clone3_ctid;
static char clone3_stack[16384] __attribute__((aligned(16)));

static void raw_clone3(void)
{
	struct {
		uint64_t flags, pidfd, child_tid, parent_tid, exit_signal,
			stack, stack_size, tls;
	} args = {
		.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
			 CLONE_THREAD | CLONE_SYSVSEM | CLONE_PARENT_SETTID |
			 CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID,
		.child_tid = (uintptr_t)&clone3_ctid,
		.parent_tid = (uintptr_t)&clone3_ptid,
		.stack = (uintptr_t)clone3_stack,
		.stack_size = sizeof clone3_stack,
	};
	long tid;
	/* Nonzero until the child's exit clears it, whenever the child gets
	 * to CLONE_CHILD_SETTID. */
	clone3_ctid = -1;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "movl $42, (%%rdx)\n\t"
			 "mov $60, %%eax\n\t"
			 "xor %%edi, %%edi\n\t"
			 "syscall\n"
			 "1:"
			 : "=a"(tid)
			 : "0"(SYS_clone3), "D"(&args), "S"(sizeof args),
			   "d"(&clone3_flag)
			 : "rcx", "r11", "memory");
	CHECK(tid > 0);
	printf("clone3: parent tid word set: %s\n", yes(clone3_ptid == tid));
	/* CLONE_CHILD_CLEARTID: the word goes to 0 and waiters wake at exit. */
	pid_t seen;
	while ((seen = clone3_ctid) != 0)
		syscall(SYS_futex, &clone3_ctid, FUTEX_WAIT, seen, NULL, NULL, 0);
	printf("clone3: thread ran: %s, tid word cleared at its exit: yes\n",
	       yes(clone3_flag == 42));
}

int main(int argc, char **argv)
{
	if (MODE("mutex"))
		mutex();
	else if (MODE("condvar"))
		condvar();
	else if (MODE("barrier"))
		barrier_rounds();
	else if (MODE("tls"))
		tls();
	else if (MODE("cancel"))
		cancel();
	else if (MODE("detached"))
		detached();
	else if (MODE("many"))
		many();
	else if (MODE("exit-early"))
		exit_early();
	else if (MODE("main-exits"))
		main_exits();
	else if (MODE("exit-group"))
		exit_group();
	else if (MODE("clone3"))
		raw_clone3();
	else {
		fprintf(stderr, "usage: threads mutex|condvar|barrier|tls|cancel|"
				"detached|many|exit-early|main-exits|exit-group|clone3\n");
		return 2;
	}
	return 0;
}
