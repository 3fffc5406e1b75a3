/* hello ARGS...: prints what the loader handed over — argv, the whole
 * environment, auxv facts that are the same natively and under km — and
 * checks the initial stack layout the ELF ABI promises. */
#include "common.h"

#include <elf.h>
#include <stdint.h>
#include <sys/auxv.h>

extern char **environ;
extern void _start(void);

static void print_phdr_types(void)
{
	const Elf64_Phdr *ph = (const Elf64_Phdr *)getauxval(AT_PHDR);
	unsigned long n = getauxval(AT_PHNUM);

	/* A wrong AT_PHDR would break musl's TLS setup long before this, but
	 * printing the types proves km pointed it at the real table. */
	CHECK(ph != NULL);
	CHECK(getauxval(AT_PHENT) == sizeof(Elf64_Phdr));
	printf("phdr types:");
	for (unsigned long i = 0; i < n; i++)
		printf(" %#x", ph[i].p_type);
	printf("\n");
}

int main(int argc, char **argv)
{
	/* At _start, %rsp points at argc and must be 16-byte aligned (SysV
	 * x86-64 ABI 3.4.1); musl passes argv = &argc + 1 through unchanged. */
	uintptr_t sp_at_entry = (uintptr_t)argv - sizeof(long);
	printf("entry sp 16-aligned: %s\n", sp_at_entry % 16 == 0 ? "yes" : "no");
	CHECK(*(long *)sp_at_entry == argc);
	CHECK(argv[argc] == NULL);
	/* envp follows argv's NULL, and auxv follows envp's NULL. */
	CHECK(environ == argv + argc + 1);

	printf("argc=%d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d]=%s\n", i, argv[i]);
	for (char **e = environ; *e; e++)
		printf("env %s\n", *e);

	printf("AT_PAGESZ=%lu\n", getauxval(AT_PAGESZ));
	printf("AT_CLKTCK=%lu\n", getauxval(AT_CLKTCK));
	printf("AT_UID=%lu AT_EUID=%lu AT_GID=%lu AT_EGID=%lu\n",
	       getauxval(AT_UID), getauxval(AT_EUID), getauxval(AT_GID),
	       getauxval(AT_EGID));
	printf("AT_SECURE=%lu\n", getauxval(AT_SECURE));
	const char *platform = (const char *)getauxval(AT_PLATFORM);
	printf("AT_PLATFORM=%s\n", platform ? platform : "(null)");
	const char *execfn = (const char *)getauxval(AT_EXECFN);
	printf("AT_EXECFN=%s\n", execfn ? execfn : "(null)");
	printf("AT_ENTRY is _start: %s\n",
	       getauxval(AT_ENTRY) == (unsigned long)_start ? "yes" : "no");

	const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
	int rnd_nonzero = 0;
	for (int i = 0; rnd && i < 16; i++)
		rnd_nonzero |= rnd[i];
	printf("AT_RANDOM non-NULL: %s, 16 bytes not all zero: %s\n",
	       rnd ? "yes" : "no", rnd_nonzero ? "yes" : "no");

	print_phdr_types();
	return 0;
}
