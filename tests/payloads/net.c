/* Sockets over loopback, each mode a self-checking exchange that prints
 * only what is the same natively and under km (no ports, no addresses).
 *
 *   net tcp4 | tcp6 | udp | unix | abstract | rights | creds | flags |
 *       nonblock | mmsg | options | hostile | timeo | async | epoll | more */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

static const char *err(long r)
{
	return r < 0 ? errno_name(errno) : "ok";
}

/* A listening stream socket of `family` on loopback, port chosen by the
 * kernel; its address goes to `addr`. */
static int listener(int family, struct sockaddr_storage *addr, socklen_t *len)
{
	int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(s >= 0);
	int one = 1;
	CHECK(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
	memset(addr, 0, sizeof *addr);
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)addr;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)addr;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		*len = sizeof *a;
	}
	CHECK(bind(s, (struct sockaddr *)addr, *len) == 0);
	CHECK(listen(s, 8) == 0);
	CHECK(getsockname(s, (struct sockaddr *)addr, len) == 0);
	return s;
}

struct echo {
	int listen_fd;
};

/* Accepts one connection and echoes until EOF. */
static void *echo_server(void *arg)
{
	struct echo *e = arg;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof peer;
	int c = accept4(e->listen_fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
	CHECK(c >= 0);
	CHECK(plen > 0 && peer.ss_family != 0);
	char buf[4096];
	ssize_t n;
	while ((n = read(c, buf, sizeof buf)) > 0)
		CHECK(write(c, buf, n) == n);
	close(c);
	return NULL;
}

static void tcp(int family)
{
	struct sockaddr_storage addr;
	socklen_t len;
	struct echo e = { listener(family, &addr, &len) };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, echo_server, &e) == 0);
	int c = socket(family, SOCK_STREAM, 0);
	CHECK(c >= 0);
	CHECK(connect(c, (struct sockaddr *)&addr, len) == 0);
	int one = 1;
	CHECK(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof peer;
	CHECK(getpeername(c, (struct sockaddr *)&peer, &plen) == 0);
	printf("peer family matches: %s, length %u\n", yes(peer.ss_family == family), plen);
	static char big[200000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7);
	size_t sent = 0, got = 0;
	static char back[sizeof big];
	while (sent < sizeof big) {
		ssize_t n = send(c, big + sent, sizeof big - sent < 8192 ? sizeof big - sent : 8192, 0);
		CHECK(n > 0);
		sent += n;
		ssize_t m = recv(c, back + got, sizeof back - got, MSG_DONTWAIT);
		if (m > 0)
			got += m;
	}
	CHECK(shutdown(c, SHUT_WR) == 0);
	ssize_t m;
	while ((m = recv(c, back + got, sizeof back - got, 0)) > 0)
		got += m;
	printf("echoed %zu bytes, equal: %s\n", got, yes(got == sizeof big && !memcmp(big, back, got)));
	close(c);
	pthread_join(t, NULL);
	close(e.listen_fd);
}

static void udp(void)
{
	int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(a >= 0 && b >= 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof addr;
	CHECK(bind(b, (struct sockaddr *)&addr, len) == 0);
	CHECK(getsockname(b, (struct sockaddr *)&addr, &len) == 0);
	CHECK(sendto(a, "datagram-one", 12, 0, (struct sockaddr *)&addr, len) == 12);
	char buf[64];
	struct sockaddr_in from;
	socklen_t flen = sizeof from;
	ssize_t n = recvfrom(b, buf, 5, MSG_TRUNC, (struct sockaddr *)&from, &flen);
	printf("udp MSG_TRUNC: %zd (buffer 5), from loopback: %s\n", n,
	       yes(from.sin_addr.s_addr == htonl(INADDR_LOOPBACK)));
	/* A short address buffer: the kernel copies what fits and reports
	 * the full length. */
	CHECK(sendto(a, "two", 3, 0, (struct sockaddr *)&addr, len) == 3);
	flen = 4;
	n = recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
	printf("udp short address buffer: %zd bytes, addrlen %u\n", n, flen);
	close(a);
	close(b);
}

static void unix_stream(int abstract)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t len;
	if (abstract) {
		snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "km-net-test-%d", getpid());
		len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(addr.sun_path + 1);
	} else {
		strcpy(addr.sun_path, "sock");
		len = sizeof addr;
	}
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(s >= 0);
	CHECK(bind(s, (struct sockaddr *)&addr, len) == 0);
	CHECK(listen(s, 1) == 0);
	struct echo e = { s };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, echo_server, &e) == 0);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&addr, len) == 0);
	CHECK(write(c, "over unix", 9) == 9);
	char buf[16] = { 0 };
	CHECK(read(c, buf, sizeof buf) == 9);
	struct sockaddr_un peer;
	socklen_t plen = sizeof peer;
	CHECK(getpeername(c, (struct sockaddr *)&peer, &plen) == 0);
	printf("unix%s: %s, peer name length matches: %s\n", abstract ? " abstract" : "", buf, yes(plen == len));
	struct ucred cred;
	socklen_t clen = sizeof cred;
	CHECK(getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0);
	printf("SO_PEERCRED pid is mine: %s, uid matches: %s\n", yes(cred.pid == getpid()), yes(cred.uid == getuid()));
	close(c);
	pthread_join(t, NULL);
	close(s);
	if (!abstract)
		unlink("sock");
}

/* Sends `fd` over `s` with SCM_RIGHTS; returns sendmsg's result. */
static long send_fd(int s, int fd)
{
	char data = 'x';
	struct iovec iov = { &data, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	return sendmsg(s, &m, 0);
}

static int recv_fd(int s, int flags, int *msg_flags)
{
	char data;
	struct iovec iov = { &data, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	CHECK(recvmsg(s, &m, flags) == 1);
	*msg_flags = m.msg_flags;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

static void rights(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	int p[2];
	CHECK(pipe(p) == 0);
	CHECK(send_fd(sv[0], p[1]) == 1);
	int flags;
	int got = recv_fd(sv[1], MSG_CMSG_CLOEXEC, &flags);
	CHECK(got >= 0);
	printf("received fd is a new payload fd: %s, cloexec: %s, ctrunc: %s\n", yes(got != p[1] && got < 64),
	       yes(fcntl(got, F_GETFD) == FD_CLOEXEC), yes(flags & MSG_CTRUNC));
	CHECK(write(got, "via passed fd", 13) == 13);
	char buf[16] = { 0 };
	CHECK(read(p[0], buf, sizeof buf) == 13);
	printf("pipe through passed fd: %s\n", buf);
	/* Numbers that are not open fds (km keeps its own fds up there). */
	int bad[] = { 999, 4000, 30000, 65000, 65535, 66000, 1 << 20, -1 };
	for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++)
		printf("SCM_RIGHTS with fd %d: %s\n", bad[i], err(send_fd(sv[0], bad[i])));
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
	close(got);
}

static void creds(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
	int one = 1;
	CHECK(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == 0);
	CHECK(send(sv[0], "c", 1, 0) == 1);
	char data;
	struct iovec iov = { &data, 1 };
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	CHECK(recvmsg(sv[1], &m, 0) == 1);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	CHECK(c && c->cmsg_type == SCM_CREDENTIALS);
	struct ucred cred;
	memcpy(&cred, CMSG_DATA(c), sizeof cred);
	printf("SCM_CREDENTIALS pid is mine: %s\n", yes(cred.pid == getpid()));
	close(sv[0]);
	close(sv[1]);
}

static void flags(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(write(sv[0], "peekaboo", 8) == 8);
	char buf[16] = { 0 };
	CHECK(recv(sv[1], buf, 4, MSG_PEEK) == 4);
	printf("MSG_PEEK: %s\n", buf);
	int avail;
	CHECK(ioctl(sv[1], FIONREAD, &avail) == 0);
	printf("FIONREAD: %d\n", avail);
	memset(buf, 0, sizeof buf);
	CHECK(recv(sv[1], buf, 8, MSG_WAITALL) == 8);
	printf("MSG_WAITALL: %s\n", buf);
	printf("empty, MSG_DONTWAIT: %s\n", err(recv(sv[1], buf, 1, MSG_DONTWAIT)));
	close(sv[0]);
	signal(SIGPIPE, SIG_IGN);
	printf("send to a closed peer: %s\n", err(send(sv[1], "x", 1, MSG_NOSIGNAL)));
	close(sv[1]);
}

static void nonblock(void)
{
	struct sockaddr_storage addr;
	socklen_t len;
	int l = listener(AF_INET, &addr, &len);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	long r = connect(c, (struct sockaddr *)&addr, len);
	printf("non-blocking connect: %s\n", r == 0 ? "ok" : (errno == EINPROGRESS ? "EINPROGRESS" : err(r)));
	struct pollfd p = { c, POLLOUT, 0 };
	CHECK(poll(&p, 1, 5000) == 1);
	int e = -1;
	socklen_t elen = sizeof e;
	CHECK(getsockopt(c, SOL_SOCKET, SO_ERROR, &e, &elen) == 0);
	printf("connected: SO_ERROR %d\n", e);
	int a = accept(l, NULL, NULL);
	CHECK(a >= 0);
	printf("accept without address: ok\n");
	int nb = 1;
	CHECK(ioctl(a, FIONBIO, &nb) == 0);
	char buf[4];
	printf("FIONBIO then read: %s\n", err(read(a, buf, sizeof buf)));
	close(a);
	close(c);
	close(l);
}

static void mmsg(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
	struct mmsghdr out[3];
	struct iovec iov[3];
	const char *words[] = { "alpha", "beta", "gamma" };
	memset(out, 0, sizeof out);
	for (int i = 0; i < 3; i++) {
		iov[i] = (struct iovec){ (void *)words[i], strlen(words[i]) };
		out[i].msg_hdr.msg_iov = &iov[i];
		out[i].msg_hdr.msg_iovlen = 1;
	}
	printf("sendmmsg: %d\n", sendmmsg(sv[0], out, 3, 0));
	struct mmsghdr in[4];
	char bufs[4][16];
	struct iovec iin[4];
	memset(in, 0, sizeof in);
	memset(bufs, 0, sizeof bufs);
	for (int i = 0; i < 4; i++) {
		iin[i] = (struct iovec){ bufs[i], sizeof bufs[i] };
		in[i].msg_hdr.msg_iov = &iin[i];
		in[i].msg_hdr.msg_iovlen = 1;
	}
	int n = recvmmsg(sv[1], in, 4, MSG_WAITFORONE, NULL);
	printf("recvmmsg: %d:", n);
	for (int i = 0; i < n; i++)
		printf(" %s/%u", bufs[i], in[i].msg_len);
	printf("\n");
	close(sv[0]);
	close(sv[1]);
}

static void options(void)
{
	int s = socket(AF_INET6, SOCK_STREAM, 0);
	CHECK(s >= 0);
	int v = -1;
	socklen_t len = sizeof v;
	CHECK(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len) == 0);
	printf("SO_TYPE %d len %u\n", v, len);
	int one = 1;
	CHECK(setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0);
	len = sizeof v;
	CHECK(getsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len) == 0);
	printf("IPV6_V6ONLY %d\n", v);
	struct timeval tv = { 1, 500000 }, tv2;
	CHECK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
	len = sizeof tv2;
	CHECK(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv2, &len) == 0);
	printf("SO_RCVTIMEO %ld.%06ld\n", (long)tv2.tv_sec, (long)tv2.tv_usec);
	struct linger lg = { 1, 3 };
	CHECK(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
	/* A 2-byte buffer for an int option: the kernel writes what fits. */
	char small[2];
	len = sizeof small;
	printf("SO_TYPE into 2 bytes: %s, len %u\n", err(getsockopt(s, SOL_SOCKET, SO_TYPE, small, &len)), len);
	printf("setsockopt with a short value: %s\n", err(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 2)));
	len = (socklen_t)-1;
	printf("getsockopt with a negative length: %s\n", err(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len)));
	close(s);
}

/* Wild pointers everywhere a socket call takes one: EFAULT as natively,
 * never a crash of km. */
static void hostile(void)
{
	void *wild[] = { (void *)16, (void *)0x7fc0000000ul, (void *)0x7fffffffe000ul, (void *)0xffff800000000000ul };
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(write(sv[0], "data", 4) == 4);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	for (unsigned i = 0; i < sizeof wild / sizeof *wild; i++) {
		void *w = wild[i];
		socklen_t len = 16;
		printf("wild %u:", i);
		printf(" bind %s", err(bind(l, w, 16)));
		printf(" getsockname %s", err(getsockname(l, w, &len)));
		printf(" getsockname-len %s", err(getsockname(l, (void *)&len, w)));
		printf(" getsockopt %s", err(getsockopt(l, SOL_SOCKET, SO_TYPE, w, &len)));
		printf(" setsockopt %s", err(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, w, 4)));
		printf(" sendmsg %s", err(syscall(SYS_sendmsg, sv[0], w, 0)));
		printf(" recvmsg %s", err(syscall(SYS_recvmsg, sv[1], w, MSG_DONTWAIT)));
		struct iovec iov = { w, 4 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		printf(" sendmsg-iov %s", err(syscall(SYS_sendmsg, sv[0], &m, 0)));
		struct iovec ok = { &len, 1 };
		struct msghdr m2 = { .msg_iov = &ok, .msg_iovlen = 1, .msg_control = w, .msg_controllen = 64 };
		printf(" sendmsg-control %s", err(syscall(SYS_sendmsg, sv[0], &m2, 0)));
		printf(" recvmsg-control %s", err(syscall(SYS_recvmsg, sv[1], &m2, MSG_DONTWAIT | MSG_PEEK)));
		struct msghdr m3 = { .msg_name = w, .msg_namelen = 16, .msg_iov = &ok, .msg_iovlen = 1 };
		printf(" recvmsg-name %s", err(syscall(SYS_recvmsg, sv[1], &m3, MSG_DONTWAIT | MSG_PEEK)));
		printf(" sendmmsg %s", err(syscall(SYS_sendmmsg, sv[0], w, 2, 0)));
		printf(" socketpair %s", err(syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, w)));
		printf(" ioctl %s\n", err(ioctl(sv[1], FIONREAD, w)));
	}
	/* Lengths beyond any address: the kernel refuses them before reading. */
	struct sockaddr_in a = { .sin_family = AF_INET };
	printf("bind with length 4096: %s\n", err(bind(l, (struct sockaddr *)&a, 4096)));
	printf("sendmsg with 2000 iovecs: %s\n", err(({
		       struct iovec many[2000];
		       for (int i = 0; i < 2000; i++)
			       many[i] = (struct iovec){ &a, 1 };
		       struct msghdr mm = { .msg_iov = many, .msg_iovlen = 2000 };
		       syscall(SYS_sendmsg, sv[0], &mm, 0);
	       })));
	/* Malformed control data. */
	char cbuf[32] = { 0 };
	struct cmsghdr *c = (struct cmsghdr *)cbuf;
	c->cmsg_len = 200;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	struct iovec one = { "x", 1 };
	struct msghdr bad = { .msg_iov = &one, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	printf("sendmsg with cmsg_len past the buffer: %s\n", err(syscall(SYS_sendmsg, sv[0], &bad, 0)));
	close(l);
	close(sv[0]);
	close(sv[1]);
}

static void on_alarm(int s)
{
	(void)s;
}

/* A handler with SA_RESTART interrupts a blocked recv: restarted when the
 * socket has no SO_RCVTIMEO, EINTR when it has one (Linux's
 * sock_intr_errno); likewise accept. */
static void *late_writer(void *arg)
{
	usleep(300000);
	CHECK(write(*(int *)arg, "late", 4) == 4);
	return NULL;
}

static void timeo(void)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct itimerval it = { .it_value = { 0, 100000 } };
	/* No timeout: the alarm's handler runs, recv restarts and gets the
	 * late write. */
	pthread_t t;
	CHECK(pthread_create(&t, NULL, late_writer, &sv[0]) == 0);
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	char buf[8] = { 0 };
	long r = recv(sv[1], buf, sizeof buf, 0);
	printf("recv without a timeout: %s %s\n", err(r), r > 0 ? buf : "");
	pthread_join(t, NULL);
	/* A 5 s timeout: the handler makes it EINTR at 0.1 s. */
	struct timeval tv = { 5, 0 };
	CHECK(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	printf("recv with SO_RCVTIMEO: %s\n", err(recv(sv[1], buf, sizeof buf, 0)));
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	char data;
	struct iovec iov = { &data, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	printf("recvmsg with SO_RCVTIMEO: %s\n", err(recvmsg(sv[1], &m, 0)));
	struct sockaddr_storage addr;
	socklen_t len;
	int l = listener(AF_INET, &addr, &len);
	CHECK(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	printf("accept with SO_RCVTIMEO: %s\n", err(accept(l, NULL, NULL)));
	close(l);
	close(sv[0]);
	close(sv[1]);
}

static volatile sig_atomic_t got_io, got_urg;
static volatile int io_fd = -1;

static void on_io(int s, siginfo_t *si, void *uc)
{
	(void)uc;
	if (s == SIGURG)
		got_urg++;
	else {
		got_io++;
		io_fd = si->si_fd;
	}
}

/* O_ASYNC with F_SETOWN: SIGIO when data arrives (F_SETSIG's signal with
 * si_fd); SIGURG for TCP out-of-band data, with SIOCATMARK. */
static void async_io(void)
{
	struct sigaction sa = { .sa_sigaction = on_io, .sa_flags = SA_SIGINFO | SA_RESTART };
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGIO, &sa, NULL) == 0 && sigaction(SIGURG, &sa, NULL) == 0);
	CHECK(sigaction(SIGRTMIN + 1, &sa, NULL) == 0);
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(fcntl(sv[1], F_SETOWN, getpid()) == 0);
	CHECK(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_ASYNC) == 0);
	printf("F_GETOWN is me: %s\n", yes(fcntl(sv[1], F_GETOWN) == getpid()));
	CHECK(write(sv[0], "x", 1) == 1);
	for (int i = 0; i < 200 && !got_io; i++)
		usleep(5000);
	printf("SIGIO on data: %s\n", yes(got_io > 0));
	got_io = 0;
	CHECK(fcntl(sv[1], F_SETSIG, SIGRTMIN + 1) == 0);
	CHECK(write(sv[0], "y", 1) == 1);
	for (int i = 0; i < 200 && !got_io; i++)
		usleep(5000);
	printf("F_SETSIG signal with si_fd: %s\n", yes(got_io > 0 && io_fd == sv[1]));
	close(sv[0]);
	close(sv[1]);
	struct sockaddr_storage addr;
	socklen_t len;
	int l = listener(AF_INET, &addr, &len);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&addr, len) == 0);
	int a = accept(l, NULL, NULL);
	CHECK(a >= 0);
	CHECK(fcntl(a, F_SETOWN, getpid()) == 0);
	CHECK(send(c, "ab", 2, 0) == 2 && send(c, "!", 1, MSG_OOB) == 1);
	for (int i = 0; i < 200 && !got_urg; i++)
		usleep(5000);
	printf("SIGURG on out-of-band data: %s\n", yes(got_urg > 0));
	char buf[4];
	int mark = -1;
	CHECK(recv(a, buf, 2, 0) == 2);
	CHECK(ioctl(a, SIOCATMARK, &mark) == 0);
	printf("SIOCATMARK after the normal bytes: %d\n", mark);
	long r = recv(a, buf, 1, MSG_OOB);
	printf("MSG_OOB byte: %s %c\n", err(r), r == 1 ? buf[0] : '-');
	close(a);
	close(c);
	close(l);
}

/* epoll: level, edge-triggered, one-shot and exclusive wake-ups. */
static void epoll_modes(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u32 = 7 }, out[4];
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev) == 0);
	CHECK(write(sv[0], "abc", 3) == 3);
	int n = epoll_wait(ep, out, 4, 1000);
	printf("ET first: %d data %u\n", n, n > 0 ? out[0].data.u32 : 0);
	printf("ET again without reading: %d\n", epoll_wait(ep, out, 4, 50));
	char buf[8];
	while (read(sv[1], buf, sizeof buf) > 0)
		;
	CHECK(write(sv[0], "d", 1) == 1);
	printf("ET after draining and new data: %d\n", epoll_wait(ep, out, 4, 1000));
	ev.events = EPOLLIN | EPOLLONESHOT;
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, sv[1], &ev) == 0);
	printf("ONESHOT first: %d\n", epoll_wait(ep, out, 4, 1000));
	printf("ONESHOT again: %d\n", epoll_wait(ep, out, 4, 50));
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, sv[1], &ev) == 0);
	printf("ONESHOT re-armed: %d\n", epoll_wait(ep, out, 4, 1000));
	CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, sv[1], NULL) == 0);
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	printf("EXCLUSIVE add: %s\n", err(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev)));
	printf("EXCLUSIVE mod: %s\n", err(epoll_ctl(ep, EPOLL_CTL_MOD, sv[1], &ev)));
	printf("EXCLUSIVE wait: %d\n", epoll_wait(ep, out, 4, 1000));
	printf("epoll_wait into a wild buffer: %s\n",
	       err(syscall(SYS_epoll_wait, ep, (void *)0x7fc0001000ul, 4, 0)));
	close(ep);
	close(sv[0]);
	close(sv[1]);
}

/* Sends n fds (copies of `fd`) in one SCM_RIGHTS message. */
static long send_fds(int s, int fd, int n)
{
	char data = 'x';
	struct iovec iov = { &data, 1 };
	char cbuf[CMSG_SPACE(8 * sizeof(int))];
	memset(cbuf, 0, sizeof cbuf);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	for (int i = 0; i < n; i++)
		memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof fd);
	return sendmsg(s, &m, 0);
}

/* Receives one message with room for `room` fds; prints what arrived. */
static void recv_fds(int s, int room, const char *label)
{
	char data;
	struct iovec iov = { &data, 1 };
	char cbuf[CMSG_SPACE(8 * sizeof(int))];
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE(room * sizeof(int)) };
	CHECK(recvmsg(s, &m, 0) == 1);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	int n = c ? (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)) : 0;
	int open_ok = 1;
	for (int i = 0; i < n; i++) {
		int f;
		memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
		open_ok &= fcntl(f, F_GETFD) >= 0;
		close(f);
	}
	printf("%s: %d fds, all open: %s, MSG_CTRUNC: %s\n", label, n, yes(open_ok), yes(m.msg_flags & MSG_CTRUNC));
}

static void more(void)
{
	/* SCM_RIGHTS truncated by a small control buffer, and by the
	 * receiver's open-file limit. */
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(send_fds(sv[0], 1, 3) == 1);
	recv_fds(sv[1], 1, "3 fds into room for 1");
	struct rlimit old, low;
	CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
	int top = dup(0);
	close(top);
	low.rlim_cur = top + 1;
	low.rlim_max = old.rlim_max;
	CHECK(send_fds(sv[0], 1, 3) == 1);
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	recv_fds(sv[1], 3, "3 fds with room for 1 under RLIMIT_NOFILE");
	int pair[2];
	printf("socketpair with room for 1 fd: %s\n", err(socketpair(AF_UNIX, SOCK_STREAM, 0, pair)));
	CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
	close(sv[0]);
	close(sv[1]);
	/* SOCK_SEQPACKET keeps message boundaries. */
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	CHECK(send(sv[0], "one", 3, 0) == 3 && send(sv[0], "three", 5, 0) == 5);
	char buf[16] = { 0 };
	long a = recv(sv[1], buf, sizeof buf, 0), b = recv(sv[1], buf + 8, sizeof buf - 8, 0);
	printf("seqpacket: %ld %ld %s %s\n", a, b, buf, buf + 8);
	close(sv[0]);
	close(sv[1]);
	/* SO_TIMESTAMP on a datagram. */
	int u = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof addr;
	CHECK(bind(u, (struct sockaddr *)&addr, len) == 0 && getsockname(u, (struct sockaddr *)&addr, &len) == 0);
	CHECK(setsockopt(u, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one) == 0);
	CHECK(sendto(u, "t", 1, 0, (struct sockaddr *)&addr, len) == 1);
	char data, cbuf[CMSG_SPACE(sizeof(struct timeval))];
	struct iovec iov = { &data, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	CHECK(recvmsg(u, &m, 0) == 1);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	struct timeval stamp = { 0, 0 }, now;
	if (c && c->cmsg_type == SCM_TIMESTAMP)
		memcpy(&stamp, CMSG_DATA(c), sizeof stamp);
	gettimeofday(&now, NULL);
	printf("SCM_TIMESTAMP present and recent: %s\n", yes(stamp.tv_sec > 0 && now.tv_sec - stamp.tv_sec < 10));
	close(u);
	/* Raw ICMP and packet sockets, where the host allows them. */
	int r = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	printf("raw ICMP socket: %s\n", r >= 0 ? "ok" : errno_name(errno));
	if (r >= 0) {
		unsigned char echo[8] = { 8, 0, 0, 0, 0x12, 0x34, 0, 1 };
		unsigned sum = 0;
		for (int i = 0; i < 8; i += 2)
			sum += echo[i] << 8 | echo[i + 1];
		sum = (sum >> 16) + (sum & 0xffff);
		sum = ~(sum + (sum >> 16)) & 0xffff;
		echo[2] = sum >> 8;
		echo[3] = sum & 0xff;
		struct sockaddr_in lo = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		CHECK(sendto(r, echo, sizeof echo, 0, (struct sockaddr *)&lo, sizeof lo) == 8);
		unsigned char reply[128];
		int got_reply = 0;
		struct pollfd p = { r, POLLIN, 0 };
		for (int i = 0; i < 4 && !got_reply && poll(&p, 1, 1000) == 1; i++) {
			long n = recv(r, reply, sizeof reply, 0);
			int ihl = (reply[0] & 15) * 4;
			got_reply = n >= ihl + 8 && reply[ihl] == 0 && reply[ihl + 4] == 0x12 && reply[ihl + 5] == 0x34;
		}
		printf("ICMP echo reply: %s\n", yes(got_reply));
		close(r);
	}
	int pk = socket(AF_PACKET, SOCK_DGRAM, htons(0x0003));
	printf("packet socket: %s\n", pk >= 0 ? "ok" : errno_name(errno));
	if (pk >= 0)
		close(pk);
	/* Interfaces: getifaddrs (netlink) and the SIOCGIF* ioctls on lo. */
	struct ifaddrs *ifs;
	CHECK(getifaddrs(&ifs) == 0);
	int lo_listed = 0;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
		lo_listed |= strcmp(i->ifa_name, "lo") == 0 && (i->ifa_flags & IFF_LOOPBACK);
	freeifaddrs(ifs);
	printf("getifaddrs lists lo as loopback: %s\n", yes(lo_listed));
	int q = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	long r1 = ioctl(q, SIOCGIFFLAGS, &ifr);
	printf("SIOCGIFFLAGS lo: %s, loopback: %s\n", err(r1), yes(ifr.ifr_flags & IFF_LOOPBACK));
	r1 = ioctl(q, SIOCGIFINDEX, &ifr);
	printf("SIOCGIFINDEX lo: %s, index > 0: %s\n", err(r1), yes(ifr.ifr_ifindex > 0));
	printf("SIOCGIFMTU lo: %s\n", err(ioctl(q, SIOCGIFMTU, &ifr)));
	struct ifreq many[16];
	struct ifconf conf = { .ifc_len = sizeof many, .ifc_req = many };
	r1 = ioctl(q, SIOCGIFCONF, &conf);
	int has_lo = 0;
	for (unsigned k = 0; r1 == 0 && k < conf.ifc_len / sizeof *many; k++)
		has_lo |= strcmp(many[k].ifr_name, "lo") == 0;
	printf("SIOCGIFCONF: %s, has lo: %s\n", err(r1), yes(has_lo));
	struct ifconf wild_conf = { .ifc_len = 64, .ifc_buf = (char *)0x7fc0001000ul };
	printf("SIOCGIFCONF into a wild array: %s\n", err(ioctl(q, SIOCGIFCONF, &wild_conf)));
	printf("SIOCGIFFLAGS with a wild ifreq: %s\n", err(ioctl(q, SIOCGIFFLAGS, (void *)0x7fc0001000ul)));
	close(q);
	/* MSG_NOSIGNAL: EPIPE without SIGPIPE (default disposition); a plain
	 * send then dies of SIGPIPE. In a child, so the run goes on. */
	signal(SIGPIPE, SIG_DFL);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
		close(sv[0]);
		printf("MSG_NOSIGNAL to a closed peer: %s\n", err(send(sv[1], "x", 1, MSG_NOSIGNAL)));
		send(sv[1], "x", 1, 0);
		_exit(0);
	}
	int status;
	CHECK(waitpid(child, &status, 0) == child);
	printf("plain send to a closed peer: killed by SIGPIPE: %s\n",
	       yes(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE));
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	CHECK(argc == 2);
	const char *m = argv[1];
	if (!strcmp(m, "tcp4"))
		tcp(AF_INET);
	else if (!strcmp(m, "tcp6"))
		tcp(AF_INET6);
	else if (!strcmp(m, "udp"))
		udp();
	else if (!strcmp(m, "unix"))
		unix_stream(0);
	else if (!strcmp(m, "abstract"))
		unix_stream(1);
	else if (!strcmp(m, "rights"))
		rights();
	else if (!strcmp(m, "creds"))
		creds();
	else if (!strcmp(m, "flags"))
		flags();
	else if (!strcmp(m, "nonblock"))
		nonblock();
	else if (!strcmp(m, "mmsg"))
		mmsg();
	else if (!strcmp(m, "options"))
		options();
	else if (!strcmp(m, "hostile"))
		hostile();
	else if (!strcmp(m, "timeo"))
		timeo();
	else if (!strcmp(m, "async"))
		async_io();
	else if (!strcmp(m, "epoll"))
		epoll_modes();
	else if (!strcmp(m, "more"))
		more();
	else
		CHECK(!"unknown mode");
	printf("done\n");
	return 0;
}
