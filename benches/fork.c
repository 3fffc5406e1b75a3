/* Process round trips, timed inside the program. Prints one line per
 * measure: "<name> <ns per round trip>".
 *   fork   fork + _exit in the child + waitpid in the parent
 *   exec   fork + execve of PROGRAM (argv[1], a static hello; its output
 *          goes to /dev/null) + waitpid */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void reap(pid_t pid) {
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "fork bench: child failed\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fork PROGRAM\n");
        return 2;
    }
    int n = 200;
    double t = now_ns();
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        reap(pid);
    }
    printf("fork %.0f\n", (now_ns() - t) / n);
    n = 50;
    t = now_ns();
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            execl(argv[1], argv[1], (char *)0);
            _exit(127);
        }
        reap(pid);
    }
    printf("exec %.0f\n", (now_ns() - t) / n);
    return 0;
}
