/* The stack pointer used as a plain register: loops that run with it far outside any mapping
 * (and just below zero), their results printed once it is back; a loop that pushes on its way
 * down the stack; then a push with it far away, which faults: the SIGSEGV handler runs on an
 * alternate stack, prints and exits. No libc. */
    .globl _start
    .text
#include "print_hex.inc"
/* rax = a sum over 3000 steps of a loop of several blocks, stepping rsp by rdx each time
 * (rsp as a counter); rsp is as it came in afterwards. */
walk:
    mov %rsp, %r12                /* the far value the loop starts from */
    xor %eax, %eax
    mov $3000, %ecx
1:  add %rsp, %rax
    test $1, %cl
    jz 3f
    rol $7, %rax
    jmp 4f
3:  xor %rcx, %rax
4:  add %rdx, %rsp
    dec %ecx
    jnz 1b
    mov %r12, %rsp
    jmp *%r13                     /* back without the stack */
/* rax = a sum over 200 steps of a loop of several blocks that pushes a value each step, reads
 * it back and leaves a gap below it: the stack pointer goes down 16 bytes a step from where
 * the loop started (compiled code takes a stack pointer below one in reach as in reach),
 * then back up. */
pushes:
    mov %rsp, %r12
    xor %eax, %eax
    mov $200, %ecx
1:  push %rcx
    test $1, %cl
    jz 3f
    add (%rsp), %rax
    rol $3, %rax
    jmp 4f
3:  xor (%rsp), %rax
4:  sub $8, %rsp
    dec %ecx
    jnz 1b
    mov %r12, %rsp
    ret
_start:
    mov %rsp, %r14
    call pushes
    call hex
    mov $0x4000000000000000, %rsp /* non-canonical */
    mov $0x10, %rdx
    lea 5f(%rip), %r13
    jmp walk
5:  mov %r14, %rsp
    call hex
    mov $-0x1000, %rsp            /* just below zero */
    mov $-0x10, %rdx
    lea 6f(%rip), %r13
    jmp walk
6:  mov %r14, %rsp
    call hex
    mov $0x00007ffffffff000, %rsp /* high in the user range */
    mov $0x1000000, %rdx
    lea 7f(%rip), %r13
    jmp walk
7:  mov %r14, %rsp
    call hex
    mov $131, %eax                /* sigaltstack(&alt, 0) */
    lea alt(%rip), %rdi
    xor %esi, %esi
    syscall
    mov $13, %eax                 /* rt_sigaction(SIGSEGV, &act, 0, 8) */
    mov $11, %edi
    lea act(%rip), %rsi
    xor %edx, %edx
    mov $8, %r10d
    syscall
    mov $0x0000700000000000, %rsp /* canonical, far from any mapping */
    lea 8f(%rip), %rcx
    jmp *%rcx                     /* the push in a unit of its own */
8:  push %rax                     /* faults */
    mov $60, %eax                 /* not reached */
    mov $1, %edi
    syscall
caught:
    mov $1, %eax
    mov $1, %edi
    lea msg(%rip), %rsi
    mov $15, %edx
    syscall
    mov $60, %eax
    xor %edi, %edi
    syscall
restorer:
    mov $15, %eax
    syscall
    .data
    .align 8
act: .quad caught, 0x0c000000, restorer, 0  /* SA_ONSTACK | SA_RESTORER */
alt: .quad altstack, 0, 65536
msg: .ascii "caught SIGSEGV\n"
    .bss
    .align 16
altstack: .space 65536
    .data
