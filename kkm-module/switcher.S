/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The switcher: the only code that runs while a kkm guest root is in CR3.
 * It lives in its own page-aligned pages, mapped supervisor-only at the same
 * virtual address in the host and in every guest root, and works on the
 * per-CPU area (layout in guest_mode.rs, whose offsets are repeated below and
 * checked there at compile time).
 *
 * kkm_switcher_enter(area) is called with interrupts off. It saves the host's
 * descriptor tables, segment bases and stack in the area, loads kkm's GDT,
 * TSS and IDT, the guest's FS/GS bases and root, and irets to ring 3. Every
 * way back (syscall via LSTAR, any exception or interrupt via the IDT stubs)
 * ends in kkm_exit_common, which stores the guest's registers in the area
 * and restores the host from the area alone, so it also recovers from a
 * fault at any point of the switcher. It then returns to the caller of
 * kkm_switcher_enter. The IDT stubs find the area through SIDT (kkm's IDT is
 * inside it), never through GS or the stack, which the guest controls.
 */

#include <linux/linkage.h>
#include <asm/unwind_hints.h>
#include <asm/nospec-branch.h>

#define MSR_FS_BASE		0xc0000100
#define MSR_GS_BASE		0xc0000101
#define MSR_KERNEL_GS_BASE	0xc0000102

/* Selectors of kkm's GDT: Linux's layout. */
#define KERNEL_DS	0x18
#define USER_DS		0x2b
#define USER_CS		0x33
#define TSS_SEL		0x40

/* Per-CPU area, see guest_mode.rs (struct Save at SAVE). */
#define SAVE		0x100
#define S_KKM_GDT	(SAVE + 0x06)
#define S_KKM_IDT	(SAVE + 0x16)
#define S_HOST_GDT	(SAVE + 0x26)
#define S_HOST_IDT	(SAVE + 0x36)
#define S_HOST_RSP	(SAVE + 0x40)
#define S_HOST_CR3	(SAVE + 0x48)
#define S_GUEST_CR3	(SAVE + 0x50)
#define S_HOST_FS	(SAVE + 0x58)
#define S_HOST_GS	(SAVE + 0x60)
#define S_HOST_KGS	(SAVE + 0x68)
#define S_GUEST_FS	(SAVE + 0x78)
#define S_GUEST_GS	(SAVE + 0x80)
#define S_CR2		(SAVE + 0x88)
#define S_NMI		(SAVE + 0x90)
#define S_KFAULT	(SAVE + 0x98)
#define S_SELF		(SAVE + 0xa0)
#define S_SCRATCH	(SAVE + 0xa8)
#define S_HOST_TR	(SAVE + 0xb0)
#define S_HOST_DS	(SAVE + 0xb2)
#define S_HOST_ES	(SAVE + 0xb4)
#define S_HOST_FSSEL	(SAVE + 0xb6)
#define S_HOST_GSSEL	(SAVE + 0xb8)
#define S_VERW_SEL	(SAVE + 0xba)
#define S_GUEST		(SAVE + 0xc0)
#define S_EXIT		(SAVE + 0x150)
#define S_HOST_GDT_RW	(SAVE + 0x206)
#define GDT_TSS_TYPE	(TSS_SEL + 5)
#define AREA_IDT	0x1000
#define EXIT_STACK_TOP	0x3000
/* Exit-frame words (22 quadwords, the layout of struct ExitFrame). */
#define EXIT_WORDS	22
#define F_VECTOR	(15 * 8)
#define F_CS		(18 * 8)
/* The pseudo-vector of a syscall exit. */
#define SYSCALL_VECTOR	0x100

/* kvm_regs offsets of the guest's registers in the area. */
#define G_RAX	(S_GUEST + 0x00)
#define G_RBX	(S_GUEST + 0x08)
#define G_RCX	(S_GUEST + 0x10)
#define G_RDX	(S_GUEST + 0x18)
#define G_RSI	(S_GUEST + 0x20)
#define G_RDI	(S_GUEST + 0x28)
#define G_RSP	(S_GUEST + 0x30)
#define G_RBP	(S_GUEST + 0x38)
#define G_R8	(S_GUEST + 0x40)
#define G_R9	(S_GUEST + 0x48)
#define G_R10	(S_GUEST + 0x50)
#define G_R11	(S_GUEST + 0x58)
#define G_R12	(S_GUEST + 0x60)
#define G_R13	(S_GUEST + 0x68)
#define G_R14	(S_GUEST + 0x70)
#define G_R15	(S_GUEST + 0x78)
#define G_RIP	(S_GUEST + 0x80)
#define G_RFLAGS (S_GUEST + 0x88)

/* Reads MSR \msr into \off(%rbx); clobbers rax, rcx, rdx. */
.macro SAVE_MSR msr, off
	movl	$\msr, %ecx
	rdmsr
	shlq	$32, %rdx
	orq	%rdx, %rax
	movq	%rax, \off(%rbx)
.endm

/* Writes the quadword \src (not rax, rcx, rdx) into MSR \msr. */
.macro LOAD_MSR msr, src
	movq	\src, %rax
	movq	%rax, %rdx
	shrq	$32, %rdx
	movl	$\msr, %ecx
	wrmsr
.endm

	.section .text.kkm_switcher, "ax"
	.balign 4096
	.globl	kkm_switcher_start
kkm_switcher_start:

/*
 * void kkm_switcher_enter(struct area *area): interrupts must be off.
 * Returns when the guest exits, with the host's state back.
 */
SYM_FUNC_START(kkm_switcher_enter)
	ENDBR
	pushfq
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	call	kkm_enter_guest
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	popfq
	RET
SYM_FUNC_END(kkm_switcher_enter)

/* The exit path returns from this call through S_HOST_RSP and .Lhost_return. */
SYM_FUNC_START_LOCAL(kkm_enter_guest)
	movq	%rdi, %rbx
	movq	%rsp, S_HOST_RSP(%rbx)
	sgdt	S_HOST_GDT(%rbx)
	sidt	S_HOST_IDT(%rbx)
	str	S_HOST_TR(%rbx)
	movw	%ds, S_HOST_DS(%rbx)
	movw	%es, S_HOST_ES(%rbx)
	movw	%fs, S_HOST_FSSEL(%rbx)
	movw	%gs, S_HOST_GSSEL(%rbx)
	SAVE_MSR MSR_FS_BASE, S_HOST_FS
	SAVE_MSR MSR_GS_BASE, S_HOST_GS
	SAVE_MSR MSR_KERNEL_GS_BASE, S_HOST_KGS

	/* kkm's tables; ltr needs an available (not busy) TSS descriptor. */
	andb	$0xfd, GDT_TSS_TYPE(%rbx)
	lgdt	S_KKM_GDT(%rbx)
	movw	$TSS_SEL, %ax
	ltr	%ax
	lidt	S_KKM_IDT(%rbx)

	/*
	 * From here on only kkm's stubs handle exceptions and NMIs, and
	 * they do not use GS: the guest's bases can go in.
	 */
	LOAD_MSR MSR_FS_BASE, S_GUEST_FS(%rbx)
	LOAD_MSR MSR_GS_BASE, S_GUEST_GS(%rbx)
	LOAD_MSR MSR_KERNEL_GS_BASE, %rbx

	/*
	 * The iret frame goes on the area's exit stack, mapped in the root.
	 * objtool follows no stack from here: this path ends in iretq.
	 */
	UNWIND_HINT_UNDEFINED
	leaq	EXIT_STACK_TOP(%rbx), %rsp
	movq	S_GUEST_CR3(%rbx), %rax
	movq	%rax, %cr3
	pushq	$USER_DS
	pushq	G_RSP(%rbx)
	pushq	G_RFLAGS(%rbx)
	pushq	$USER_CS
	pushq	G_RIP(%rbx)
	/*
	 * VERW with a memory operand clears the CPU's buffers on CPUs with
	 * MDS-class bugs, as Linux does before any return to ring 3.
	 */
	verw	S_VERW_SEL(%rbx)
	movq	G_RAX(%rbx), %rax
	movq	G_RCX(%rbx), %rcx
	movq	G_RDX(%rbx), %rdx
	movq	G_RSI(%rbx), %rsi
	movq	G_RDI(%rbx), %rdi
	movq	G_RBP(%rbx), %rbp
	movq	G_R8(%rbx), %r8
	movq	G_R9(%rbx), %r9
	movq	G_R10(%rbx), %r10
	movq	G_R11(%rbx), %r11
	movq	G_R12(%rbx), %r12
	movq	G_R13(%rbx), %r13
	movq	G_R14(%rbx), %r14
	movq	G_R15(%rbx), %r15
	movq	G_RBX(%rbx), %rbx
	iretq
.Lhost_return:
	/* kkm_exit_common comes here on the host's stack: only the return address is left. */
	UNWIND_HINT_FUNC
	RET
SYM_FUNC_END(kkm_enter_guest)

/*
 * LSTAR. FMASK cleared IF, TF, AC and DF. The guest cannot change
 * KERNEL_GS_BASE (it holds the area), so swapgs finds the area; RSP is the
 * guest's until it is replaced. The exit frame is built as an interrupt
 * gate would: ss, rsp, rflags (r11), cs, rip (rcx), error 0, vector.
 */
SYM_CODE_START(kkm_syscall_entry)
	UNWIND_HINT_UNDEFINED
	endbr64
	swapgs
	movq	%rsp, %gs:S_SCRATCH
	movq	%gs:S_SELF, %rsp
	addq	$EXIT_STACK_TOP, %rsp
	pushq	$USER_DS
	pushq	%gs:S_SCRATCH
	swapgs
	pushq	%r11
	pushq	$USER_CS
	pushq	%rcx
	pushq	$0
	pushq	$SYSCALL_VECTOR
	jmp	kkm_exit_common
SYM_CODE_END(kkm_syscall_entry)

/* 256 IDT stubs of 16 bytes each, in vector order. */
	.balign 16
	.globl	kkm_idt_stubs
kkm_idt_stubs:
	vector = 0
	.rept 256
	.balign 16
	endbr64
	/* Vectors for which the CPU pushes an error code push none here. */
	.if (vector <> 8) && ((vector < 10) || (vector > 14)) && (vector <> 17) && (vector <> 21) && (vector <> 29) && (vector <> 30)
	pushq	$0
	.endif
	pushq	$vector
	jmp	kkm_exit_common
	vector = vector + 1
	.endr
	.balign 16
	/* Fails to assemble if a stub outgrew its 16 bytes. */
	.org	kkm_idt_stubs + 256 * 16

/*
 * The common exit. The stack holds an exit frame's top part (vector, error,
 * then the CPU's frame); the GPRs are pushed below it.
 */
SYM_CODE_START_LOCAL(kkm_exit_common)
	UNWIND_HINT_UNDEFINED
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	/* AC, DF and TF off without clac (which needs SMAP): IF is off already. */
	pushq	$2
	popfq
	/* The guest's return predictions must not steer the host's rets. */
	__FILL_RETURN_BUFFER(%rax, RSB_CLEAR_LOOPS)
	/* The area holds kkm's IDT. */
	subq	$16, %rsp
	sidt	(%rsp)
	movq	2(%rsp), %rbx
	addq	$16, %rsp
	subq	$AREA_IDT, %rbx

	testb	$3, F_CS(%rsp)
	jnz	.Lfrom_guest
	/*
	 * From ring 0, i.e. inside the switcher. An NMI is latched for the
	 * host; a #DB is the single step into kkm_syscall_entry of a guest
	 * that ran syscall with TF set (FMASK clears TF only after it). Both
	 * resume the switcher. Anything else is a switcher fault: go home.
	 */
	cmpq	$2, F_VECTOR(%rsp)
	je	.Lkernel_nmi
	cmpq	$1, F_VECTOR(%rsp)
	je	.Lresume
	movq	$1, S_KFAULT(%rbx)
	jmp	.Lsave_frame
.Lkernel_nmi:
	movq	$1, S_NMI(%rbx)
.Lresume:
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rbp
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rbx
	popq	%rax
	addq	$16, %rsp
	iretq

.Lfrom_guest:
	UNWIND_HINT_UNDEFINED
	movq	$0, S_KFAULT(%rbx)
	SAVE_MSR MSR_FS_BASE, S_GUEST_FS
	SAVE_MSR MSR_GS_BASE, S_GUEST_GS
.Lsave_frame:
	movq	%cr2, %rax
	movq	%rax, S_CR2(%rbx)
	movq	%rsp, %rsi
	leaq	S_EXIT(%rbx), %rdi
	movl	$EXIT_WORDS, %ecx
	rep movsq

	/* Back to the host, from the area alone. */
	movq	S_HOST_CR3(%rbx), %rax
	movq	%rax, %cr3
	movl	$KERNEL_DS, %eax
	movl	%eax, %ss
	movw	S_HOST_DS(%rbx), %ds
	movw	S_HOST_ES(%rbx), %es
	movw	S_HOST_FSSEL(%rbx), %fs
	movw	S_HOST_GSSEL(%rbx), %gs
	LOAD_MSR MSR_FS_BASE, S_HOST_FS(%rbx)
	LOAD_MSR MSR_GS_BASE, S_HOST_GS(%rbx)
	LOAD_MSR MSR_KERNEL_GS_BASE, S_HOST_KGS(%rbx)
	/*
	 * The host's GDTR points at a read-only alias, where ltr cannot mark
	 * the TSS busy: as Linux does, load TR through the writable GDT (its
	 * TSS descriptor made available first), then the alias.
	 */
	lgdt	S_HOST_GDT_RW(%rbx)
	movq	S_HOST_GDT_RW + 2(%rbx), %rax
	movzwl	S_HOST_TR(%rbx), %ecx
	andb	$0xfd, 5(%rax, %rcx)
	ltr	S_HOST_TR(%rbx)
	lgdt	S_HOST_GDT(%rbx)
	lidt	S_HOST_IDT(%rbx)
	movq	S_HOST_RSP(%rbx), %rsp
	jmp	.Lhost_return
SYM_CODE_END(kkm_exit_common)

	.balign 4096
	.globl	kkm_switcher_end
kkm_switcher_end:

	.text
/*
 * void kkm_deliver_to_host(unsigned long entry): runs the host's handler at
 * `entry` (read from its IDT gate) as if the interrupt had hit this code,
 * with interrupts still off: its iret comes back here.
 */
	.globl	kkm_deliver_to_host
	.type	kkm_deliver_to_host, @function
kkm_deliver_to_host:
	endbr64
	pushq	%rbp
	movq	%rsp, %rbp
	andq	$-16, %rsp
	pushq	$KERNEL_DS
	pushq	%rbp
	pushfq
	pushq	$0x10
	call	*%rdi
	leave
	RET
	.size	kkm_deliver_to_host, . - kkm_deliver_to_host

/*
 * void kkm_unblock_nmi(void): an iret to the next instruction. After an NMI
 * exit the CPU blocks NMIs until the next iret, which the exit path (a ret)
 * does not execute.
 */
	.globl	kkm_unblock_nmi
	.type	kkm_unblock_nmi, @function
kkm_unblock_nmi:
	endbr64
	movq	%rsp, %rax
	pushq	$KERNEL_DS
	pushq	%rax
	pushfq
	pushq	$0x10
	leaq	1f(%rip), %rax
	pushq	%rax
	iretq
1:
	RET
	.size	kkm_unblock_nmi, . - kkm_unblock_nmi
