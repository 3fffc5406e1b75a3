/* timers MODE: timers that signal or wake the payload.
 *   itimer         - setitimer/getitimer ITIMER_REAL, SIGALRM handler,
 *                    nanosleep interrupted by it (EINTR, time remaining)
 *   alarm          - alarm() remaining seconds and SIGALRM after 1 s
 *   expire-default - an ITIMER_REAL expiry without a handler (status 142)
 *   posix-timer    - timer_create SIGEV_SIGNAL with a value, waited for
 *                    with sigwaitinfo; timer_gettime, TIMER_ABSTIME
 *   timer-thread   - timer_create SIGEV_THREAD: the callback runs in a
 *                    thread of its own
 *   timerfd        - timerfd_create/settime/gettime and blocking reads
 * Elapsed times are checked against bounds, never printed. */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void handle_alarm(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
}

static long usec(struct timeval t)
{
	return t.tv_sec * 1000000L + t.tv_usec;
}

static void itimer(void)
{
	handle_alarm();
	sigset_t alrm, old;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	CHECK(sigprocmask(SIG_BLOCK, &alrm, &old) == 0);

	struct itimerval every_10ms = {{0, 10000}, {0, 10000}}, prev, now;
	CHECK(setitimer(ITIMER_REAL, &every_10ms, &prev) == 0);
	printf("previous timer: %ld us\n", usec(prev.it_value));
	CHECK(getitimer(ITIMER_REAL, &now) == 0);
	/* Within the interval, give or take the kernel's timer resolution: a
	 * kernel without high-resolution timers (the kkm rig's guest, HZ=250,
	 * on an emulated CPU under load) reports up to a few ticks more. */
	printf("getitimer: interval %ld us, value within it %s\n",
	       usec(now.it_interval),
	       yes(usec(now.it_value) > 0 && usec(now.it_value) <= 4 * 10000));
	while (alarms < 5)
		sigsuspend(&old);
	printf("SIGALRM handled %d times\n", (int)alarms);

	CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
	struct timespec ten_s = {10, 0}, rem;
	errno = 0;
	int r = nanosleep(&ten_s, &rem);
	printf("nanosleep interrupted: %d %s, remaining under 10 s: %s\n", r,
	       errno_name(errno), yes(rem.tv_sec < 10 && (rem.tv_sec || rem.tv_nsec)));

	struct itimerval off = {{0, 0}, {0, 0}};
	CHECK(setitimer(ITIMER_REAL, &off, &prev) == 0);
	printf("disarming returns the interval: %ld us\n", usec(prev.it_interval));
	CHECK(getitimer(ITIMER_REAL, &now) == 0);
	printf("after disarming: %ld us\n", usec(now.it_value));
}

static void alarm_mode(void)
{
	handle_alarm();
	printf("alarm(100) returned %u\n", alarm(100));
	unsigned left = alarm(1);
	printf("alarm(1) returned 99 or 100: %s\n", yes(left == 99 || left == 100));
	sigset_t none;
	sigemptyset(&none);
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	CHECK(sigprocmask(SIG_BLOCK, &alrm, NULL) == 0);
	while (!alarms)
		sigsuspend(&none);
	printf("SIGALRM after alarm(1): %d\n", (int)alarms);
	printf("alarm(0) afterwards returned %u\n", alarm(0));
}

static void expire_default(void)
{
	struct itimerval once = {{0, 0}, {0, 20000}};
	CHECK(setitimer(ITIMER_REAL, &once, NULL) == 0);
	printf("waiting for SIGALRM\n");
	fflush(stdout);
	for (;;)
		pause();
}

/* A 5 ms periodic timer as *_gettime reports it right after arming. */
static void show_5ms(const char *who, const struct itimerspec *cur)
{
	printf("%s: interval %ld ns, value within it %s\n", who,
	       cur->it_interval.tv_nsec,
	       yes(cur->it_value.tv_sec == 0 && cur->it_value.tv_nsec > 0 &&
		   cur->it_value.tv_nsec <= 5000000));
}

static void posix_timer(void)
{
	int sig = SIGRTMIN + 2;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);

	struct sigevent ev = {0};
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = 77;
	timer_t t;
	CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
	struct itimerspec every_5ms = {{0, 5000000}, {0, 5000000}}, cur;
	CHECK(timer_settime(t, 0, &every_5ms, NULL) == 0);
	CHECK(timer_gettime(t, &cur) == 0);
	show_5ms("timer_gettime", &cur);
	for (int i = 0; i < 3; i++) {
		siginfo_t si;
		int s = sigwaitinfo(&set, &si);
		printf("expiry %d: %s %s, value %d, timer id matches %s\n", i,
		       signal_name(s), si.si_code == SI_TIMER ? "SI_TIMER" : "other",
		       si.si_value.sival_int, yes(si.si_timerid == (int)(intptr_t)t));
	}
	struct itimerspec off = {{0, 0}, {0, 0}};
	CHECK(timer_settime(t, 0, &off, NULL) == 0);
	CHECK(timer_gettime(t, &cur) == 0);
	printf("disarmed: %ld ns\n", cur.it_value.tv_nsec);

	/* One-shot at an absolute time 5 ms from now on CLOCK_REALTIME; a
	 * signal of its own, as one from the first timer may still be queued. */
	sig = SIGRTMIN + 4;
	sigemptyset(&set);
	sigaddset(&set, sig);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = 78;
	timer_t abs;
	CHECK(timer_create(CLOCK_REALTIME, &ev, &abs) == 0);
	struct itimerspec at = {{0, 0}, {0, 0}};
	CHECK(clock_gettime(CLOCK_REALTIME, &at.it_value) == 0);
	at.it_value.tv_nsec += 5000000;
	if (at.it_value.tv_nsec >= 1000000000) {
		at.it_value.tv_sec++;
		at.it_value.tv_nsec -= 1000000000;
	}
	CHECK(timer_settime(abs, TIMER_ABSTIME, &at, NULL) == 0);
	siginfo_t si;
	int s = sigwaitinfo(&set, &si);
	printf("absolute one-shot: %s value %d\n", signal_name(s), si.si_value.sival_int);
	struct timespec none = {0, 20000000};
	SHOW("no second expiry", sigtimedwait(&set, &si, &none));
	CHECK(timer_delete(t) == 0 && timer_delete(abs) == 0);
}

static sem_t fired;
static pid_t main_tid, callback_tid;
static int callback_value;

static void callback(union sigval v)
{
	callback_tid = syscall(SYS_gettid);
	callback_value = v.sival_int;
	sem_post(&fired);
}

static void timer_thread(void)
{
	main_tid = syscall(SYS_gettid);
	CHECK(sem_init(&fired, 0, 0) == 0);
	struct sigevent ev = {0};
	ev.sigev_notify = SIGEV_THREAD;
	ev.sigev_notify_function = callback;
	ev.sigev_value.sival_int = 88;
	timer_t t;
	CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
	struct itimerspec every_5ms = {{0, 5000000}, {0, 5000000}};
	CHECK(timer_settime(t, 0, &every_5ms, NULL) == 0);
	for (int i = 0; i < 3; i++)
		while (sem_wait(&fired) != 0)
			CHECK(errno == EINTR);
	CHECK(timer_delete(t) == 0);
	printf("callback ran 3 times with value %d, in another thread: %s\n",
	       callback_value, yes(callback_tid != main_tid && callback_tid > 0));
}

static void timerfd(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	CHECK(fd >= 0);
	uint64_t n;
	SHOW("read with a short buffer", read(fd, &n, 4));
	struct itimerspec every_5ms = {{0, 5000000}, {0, 5000000}}, cur;
	CHECK(timerfd_settime(fd, 0, &every_5ms, NULL) == 0);
	CHECK(timerfd_gettime(fd, &cur) == 0);
	show_5ms("timerfd_gettime", &cur);
	uint64_t total = 0;
	int reads = 0;
	while (total < 3) {
		CHECK(read(fd, &n, sizeof n) == sizeof n);
		CHECK(n >= 1);
		total += n;
		reads++;
	}
	printf("blocking reads counted at least 3 expirations: %s\n",
	       yes(total >= 3 && reads >= 1));
	struct itimerspec off = {{0, 0}, {0, 0}};
	CHECK(timerfd_settime(fd, 0, &off, NULL) == 0);
	CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	SHOW("read when disarmed, non-blocking", read(fd, &n, sizeof n));
	CHECK(timerfd_gettime(fd, &cur) == 0);
	printf("disarmed: %ld ns\n", cur.it_value.tv_nsec);
}

int main(int argc, char **argv)
{
	if (MODE("itimer"))
		itimer();
	else if (MODE("alarm"))
		alarm_mode();
	else if (MODE("expire-default"))
		expire_default();
	else if (MODE("posix-timer"))
		posix_timer();
	else if (MODE("timer-thread"))
		timer_thread();
	else if (MODE("timerfd"))
		timerfd();
	else {
		fprintf(stderr, "usage: timers itimer|alarm|expire-default|"
				"posix-timer|timer-thread|timerfd\n");
		return 2;
	}
	return 0;
}
