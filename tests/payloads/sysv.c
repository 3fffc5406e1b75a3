/* System V semaphores and message queues (private ones, removed at the
 * end), with wild pointers for each call that takes one. */
#define _GNU_SOURCE
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static const char *err(long r)
{
	return r < 0 ? errno_name(errno) : "ok";
}

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static void sems(void)
{
	int id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
	CHECK(id >= 0);
	unsigned short set[3] = { 1, 2, 3 }, got[3] = { 0 };
	CHECK(semctl(id, 0, SETALL, (union semun){ .array = set }) == 0);
	struct sembuf ops[2] = { { 0, -1, 0 }, { 2, 4, 0 } };
	printf("semop: %s\n", err(semop(id, ops, 2)));
	CHECK(semctl(id, 0, GETALL, (union semun){ .array = got }) == 0);
	printf("values: %u %u %u\n", got[0], got[1], got[2]);
	struct sembuf take = { 0, -1, IPC_NOWAIT };
	printf("semop on zero, IPC_NOWAIT: %s\n", err(semop(id, &take, 1)));
	struct timespec ts = { 0, 20000000 };
	take.sem_flg = 0;
	printf("semtimedop on zero, 20 ms: %s\n", err(semtimedop(id, &take, 1, &ts)));
	struct semid_ds ds;
	CHECK(semctl(id, 0, IPC_STAT, (union semun){ .buf = &ds }) == 0);
	printf("nsems: %lu, GETVAL 1: %d\n", (unsigned long)ds.sem_nsems, semctl(id, 1, GETVAL));
	void *wild = (void *)0x7fc0001000ul;
	printf("wild: semop %s stat %s getall %s setall %s timeout %s\n", err(semop(id, wild, 1)),
	       err(syscall(SYS_semctl, id, 0, IPC_STAT, wild)), err(syscall(SYS_semctl, id, 0, GETALL, wild)),
	       err(syscall(SYS_semctl, id, 0, SETALL, wild)), err(semtimedop(id, &take, 1, wild)));
	printf("semop with 100000 operations: %s\n", err(syscall(SYS_semop, id, ops, 100000)));
	/* A forked child posts semaphore 1; the parent waits for it. */
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		struct sembuf post = { 1, 5, 0 };
		_exit(semop(id, &post, 1) == 0 ? 0 : 1);
	}
	struct sembuf wait5 = { 1, -7, 0 };
	printf("semop waiting for the child's post: %s\n", err(semop(id, &wait5, 1)));
	CHECK(waitpid(child, NULL, 0) == child);
	printf("rmid: %s, then: %s\n", err(semctl(id, 0, IPC_RMID)), err(semctl(id, 0, GETVAL)));
}

struct msg {
	long type;
	char text[32];
};

static void queues(void)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	CHECK(id >= 0);
	struct msg m1 = { 1, "first" }, m2 = { 2, "second, longer text" }, in;
	CHECK(msgsnd(id, &m1, 6, 0) == 0);
	CHECK(msgsnd(id, &m2, 20, 0) == 0);
	struct msqid_ds ds;
	CHECK(msgctl(id, IPC_STAT, &ds) == 0);
	printf("queued: %lu\n", (unsigned long)ds.msg_qnum);
	memset(&in, 0, sizeof in);
	printf("msgrcv type 2 into 6 bytes: %s\n", err(msgrcv(id, &in, 6, 2, 0)));
	ssize_t n = msgrcv(id, &in, 6, 2, MSG_NOERROR);
	printf("with MSG_NOERROR: %zd %.6s\n", n, in.text);
	n = msgrcv(id, &in, sizeof in.text, 0, 0);
	printf("next: %zd type %ld %s\n", n, in.type, in.text);
	printf("empty, IPC_NOWAIT: %s\n", err(msgrcv(id, &in, sizeof in.text, 0, IPC_NOWAIT)));
	void *wild = (void *)0x7fc0001000ul;
	printf("wild: msgsnd %s msgrcv %s stat %s\n", err(msgsnd(id, wild, 6, 0)),
	       err(msgrcv(id, wild, 6, 0, IPC_NOWAIT)), err(syscall(SYS_msgctl, id, IPC_STAT, wild)));
	printf("msgsnd negative size: %s\n", err(syscall(SYS_msgsnd, id, &m1, -1L, 0)));
	/* A forked child sends; the parent receives. */
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		struct msg m3 = { 3, "from the child" };
		_exit(msgsnd(id, &m3, 15, 0) == 0 ? 0 : 1);
	}
	int status;
	CHECK(waitpid(child, &status, 0) == child);
	memset(&in, 0, sizeof in);
	n = msgrcv(id, &in, sizeof in.text, 3, 0);
	printf("across fork: %zd %s, child status %d\n", n, in.text, WEXITSTATUS(status));
	printf("rmid: %s\n", err(msgctl(id, IPC_RMID, NULL)));
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	sems();
	queues();
	printf("done\n");
	return 0;
}
