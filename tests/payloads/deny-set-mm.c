/* Runs a program under a seccomp filter that answers prctl(PR_SET_MM, ...)
 * with EPERM, as a kernel that refuses it would: for checking that km then
 * runs its payload as before (km/tests/proc_cmdline.rs).
 *
 *   deny-set-mm PROGRAM [ARGS...]
 *
 * musl's headers carry no <linux/filter.h>, so the few definitions the
 * filter needs are spelled out. */
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

struct sock_filter {
	uint16_t code;
	uint8_t jt, jf;
	uint32_t k;
};

struct sock_fprog {
	unsigned short len;
	struct sock_filter *filter;
};

#define LOAD_WORD(offset) { 0x20, 0, 0, (offset) } /* BPF_LD | BPF_W | BPF_ABS */
#define JUMP_IF(value, jt, jf) { 0x15, (jt), (jf), (value) } /* BPF_JMP | BPF_JEQ | BPF_K */
#define RETURN(value) { 0x06, 0, 0, (value) } /* BPF_RET | BPF_K */

/* struct seccomp_data: nr, arch, then the arguments from byte 16. */
enum { NR = 0, ARCH = 4, ARG0 = 16 };
#define AUDIT_ARCH_X86_64 0xc000003eu
#define RET_ALLOW 0x7fff0000u
#define RET_ERRNO 0x00050000u
#define SET_MM 35

int main(int argc, char **argv)
{
	CHECK(argc >= 2);
	struct sock_filter code[] = {
		LOAD_WORD(ARCH),
		JUMP_IF(AUDIT_ARCH_X86_64, 0, 4),
		LOAD_WORD(NR),
		JUMP_IF(SYS_prctl, 0, 2),
		LOAD_WORD(ARG0),
		JUMP_IF(SET_MM, 1, 0),
		RETURN(RET_ALLOW),
		RETURN(RET_ERRNO | EPERM),
	};
	struct sock_fprog prog = { sizeof code / sizeof code[0], code };
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	CHECK(prctl(PR_SET_SECCOMP, 2, &prog, 0, 0) == 0);
	execv(argv[1], argv + 1);
	CHECK(!"execv");
	return 1;
}
