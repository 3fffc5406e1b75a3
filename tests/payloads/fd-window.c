/* km's vCPU fds are born below km's fd floor: the kernel gives KVM's new
 * fd the lowest free number, and km moves it up right after. A hostile
 * payload races that moment with threads that dup, map, probe and replace
 * the numbers a new fd would get, while the main thread creates threads
 * (each a new vCPU). Natively those numbers stay free and nothing is ever
 * caught; under km whatever is caught must be useless: never mapped (the
 * vCPU's kvm_run page), never a working KVM ioctl, and never adopted by km
 * in place of its vCPU. Prints only what is the same in both runs.
 *
 *   mmap-anon   mmap of the payload's own fds without a file type
 *               (eventfd, epoll, timerfd, signalfd): ENODEV, as natively
 *   race        dup/mmap/ioctl on the candidate numbers during creation
 *   replace     the same, and closes a caught number to put a memfd there */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define THREADS 24
/* The numbers the kernel would give next: the window is a few microseconds
 * and each try costs the spinner a guest exit, so it looks at few. */
#define CANDIDATES 2
/* KVM_GET_REGS: _IOR(0xAE, 0x81, struct kvm_regs), 144 bytes. */
#define KVM_GET_REGS_NR 0x8090ae81UL

static atomic_int stop, mapped, vcpu_ioctls;
static int lowest, replace;

static void try_mmap(const char *what, int fd)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap %s: %s\n", what, p == MAP_FAILED ? errno_name(errno) : "mapped");
	if (p != MAP_FAILED)
		munmap(p, 4096);
}

static void mmap_anon(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	try_mmap("eventfd", eventfd(0, 0));
	try_mmap("epoll", epoll_create1(0));
	try_mmap("timerfd", timerfd_create(CLOCK_MONOTONIC, 0));
	try_mmap("signalfd", signalfd(-1, &set, 0));
	int zero = open("/dev/zero", O_RDWR);
	CHECK(zero >= 0);
	try_mmap("/dev/zero", zero);
	int mem = memfd_create("m", 0);
	CHECK(mem >= 0 && ftruncate(mem, 4096) == 0);
	try_mmap("memfd", mem);
}

/* A file with no type is none of this payload's: it holds no anonymous
 * inode of its own in the race modes. */
static int foreign(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == 0;
}

static void *spinner(void *arg)
{
	(void)arg;
	unsigned char regs[144];
	while (!atomic_load(&stop)) {
		for (int n = lowest; n < lowest + CANDIDATES; n++) {
			int d = fcntl(n, F_DUPFD_CLOEXEC, 64);
			if (d < 0)
				continue;
			if (foreign(d)) {
				void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
				if (p != MAP_FAILED) {
					atomic_fetch_add(&mapped, 1);
					munmap(p, 4096);
				}
				if (ioctl(d, KVM_GET_REGS_NR, regs) >= 0)
					atomic_fetch_add(&vcpu_ioctls, 1);
				if (replace && foreign(n) && close(n) == 0) {
					int m = memfd_create("decoy", 0);
					for (int i = 0; i < 100; i++)
						sched_yield();
					if (m >= 0)
						close(m);
				}
			}
			close(d);
		}
	}
	return NULL;
}

static pthread_barrier_t all_up;

/* A thread creation the spinners' decoys made fail (km refuses a vCPU fd
 * it finds replaced) is EAGAIN; tried again, up to a bound. */
static int refused;

static void create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int e;
	while ((e = pthread_create(t, NULL, fn, arg)) == EAGAIN && ++refused < 1000)
		;
	CHECK(e == 0);
}

static void *worker(void *arg)
{
	pthread_barrier_wait(&all_up);
	return arg;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "mmap-anon")) {
		mmap_anon();
		return 0;
	}
	CHECK(argc > 1 && (!strcmp(argv[1], "race") || !strcmp(argv[1], "replace")));
	replace = !strcmp(argv[1], "replace");
	lowest = open("/dev/null", O_RDONLY);
	CHECK(lowest >= 0 && close(lowest) == 0);

	pthread_t spin[2], t[THREADS];
	for (int i = 0; i < 2; i++)
		create(&spin[i], spinner, NULL);
	CHECK(pthread_barrier_init(&all_up, NULL, THREADS + 1) == 0);
	for (int i = 0; i < THREADS; i++)
		create(&t[i], worker, (void *)(long)i);
	pthread_barrier_wait(&all_up);
	int joined = 0;
	for (int i = 0; i < THREADS; i++) {
		void *r;
		CHECK(pthread_join(t[i], &r) == 0);
		joined += r == (void *)(long)i;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_join(spin[i], NULL) == 0);
	printf("threads joined: %d\n", joined);
	printf("km fds mapped: %d\n", atomic_load(&mapped));
	printf("vCPU ioctls that worked: %d\n", atomic_load(&vcpu_ioctls));
	return 0;
}
