/* Thread and signal round trips, timed inside the program. Prints one
 * line per measure: "<name> <ns per round trip>".
 *   create   pthread_create + pthread_join of an empty thread
 *   futex    one ping-pong between two threads over a futex word
 *   signal   raise(SIGUSR1) to self, through an empty handler and back */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* From linux/futex.h, which musl-gcc cannot see. */
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

static void *nothing(void *arg) { return arg; }

static atomic_int word;
static long rounds;

static void futex_wait(int expect) {
    while (atomic_load(&word) == expect)
        syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, expect, NULL, NULL, 0);
}

static void futex_set(int v) {
    atomic_store(&word, v);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The partner answers every 1 with a 0. */
static void *partner(void *arg) {
    for (long i = 0; i < rounds; i++) {
        futex_wait(0);
        futex_set(0);
    }
    return arg;
}

static void on_usr1(int sig) { (void)sig; }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000;
    double t = now_ns();
    for (long i = 0; i < n; i++) {
        pthread_t th;
        if (pthread_create(&th, NULL, nothing, NULL) != 0) return 1;
        pthread_join(th, NULL);
    }
    printf("create %.0f\n", (now_ns() - t) / n);

    rounds = n;
    pthread_t th;
    pthread_create(&th, NULL, partner, NULL);
    t = now_ns();
    for (long i = 0; i < n; i++) {
        futex_set(1);
        futex_wait(1);
    }
    printf("futex %.0f\n", (now_ns() - t) / n);
    pthread_join(th, NULL);

    signal(SIGUSR1, on_usr1);
    t = now_ns();
    for (long i = 0; i < n; i++) raise(SIGUSR1);
    printf("signal %.0f\n", (now_ns() - t) / n);
    return 0;
}
