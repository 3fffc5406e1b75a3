/* Shared helpers for the C payloads.
 *
 * Every payload prints only facts that are identical natively and under km
 * (no addresses, inode numbers, times or absolute temp paths), so the harness
 * can compare the two runs byte for byte. A failed self-check prints to stderr
 * and exits 1, so a payload is also a test on its own when run natively. */
#ifndef PAYLOAD_COMMON_H
#define PAYLOAD_COMMON_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: check failed: %s (errno %s)\n", \
				__FILE__, __LINE__, #cond, errno_name(errno));   \
			exit(1);                                              \
		}                                                             \
	} while (0)

/* Symbolic errno names: numbers are correct too, but names make a diff
 * between native and km output readable. */
/* "yes" or "no", for the facts payloads print. */
static inline const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static inline const char *errno_name(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ESPIPE: return "ESPIPE";
	case EPIPE: return "EPIPE";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ELOOP: return "ELOOP";
	default: {
		static char buf[32];
		snprintf(buf, sizeof buf, "errno%d", e);
		return buf;
	}
	}
}

/* Runs a raw-result expression and prints "label: result" or
 * "label: -1 ERRNO", the form used for every syscall whose outcome is printed. */
#define SHOW(label, expr)                                                     \
	do {                                                                  \
		errno = 0;                                                    \
		long r_ = (long)(expr);                                       \
		if (r_ < 0)                                                   \
			printf("%s: %ld %s\n", label, r_, errno_name(errno));  \
		else                                                          \
			printf("%s: %ld\n", label, r_);                        \
	} while (0)

/* Selects the sub-mode named by argv[1]; prints usage and exits 2 otherwise. */
#define MODE(name) (argc > 1 && strcmp(argv[1], name) == 0)

/* Signal names, for the same reason. */
static inline const char *signal_name(int s)
{
	static const char *const names[] = {
		[SIGHUP] = "SIGHUP", [SIGINT] = "SIGINT", [SIGQUIT] = "SIGQUIT",
		[SIGILL] = "SIGILL", [SIGTRAP] = "SIGTRAP", [SIGABRT] = "SIGABRT",
		[SIGBUS] = "SIGBUS", [SIGFPE] = "SIGFPE", [SIGKILL] = "SIGKILL",
		[SIGUSR1] = "SIGUSR1", [SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2",
		[SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM", [SIGTERM] = "SIGTERM",
		[SIGCHLD] = "SIGCHLD", [SIGCONT] = "SIGCONT", [SIGURG] = "SIGURG",
		[SIGWINCH] = "SIGWINCH",
	};
	static char buf[32];
	if (s > 0 && s < (int)(sizeof names / sizeof names[0]) && names[s])
		return names[s];
	if (s >= SIGRTMIN && s <= SIGRTMAX)
		snprintf(buf, sizeof buf, "SIGRTMIN+%d", s - SIGRTMIN);
	else
		snprintf(buf, sizeof buf, "signal%d", s);
	return buf;
}

/* The signal named by `name` (as signal_name prints it); exits 2 if unknown. */
static inline int signal_number(const char *name)
{
	for (int s = 1; s <= SIGRTMAX; s++)
		if (strcmp(signal_name(s), name) == 0)
			return s;
	fprintf(stderr, "unknown signal %s\n", name);
	exit(2);
}

#endif
