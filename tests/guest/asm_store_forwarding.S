/* Loads right after stores to the same address, which compiled code may take from the store:
 * a wider load than the store (the rest from memory), narrower ones, a store through another
 * register to the same bytes in between, and the same in a loop. Printed as hex; no libc. */
    .globl _start
    .text
#include "print_hex.inc"
_start:
    lea buf(%rip), %rsi
    mov $0x1122334455667788, %rax
    movq %rax, %xmm1
    movsd %xmm1, (%rsi)            /* 8 bytes, then 16 read back */
    movupd (%rsi), %xmm0
    movq %xmm0, %rax
    call hex
    lea buf(%rip), %rsi
    movupd (%rsi), %xmm0
    pextrq $1, %xmm0, %rax         /* the high half is still memory's */
    call hex
    lea buf(%rip), %rsi
    mov $0x8877665544332211, %rax
    mov %rax, 8(%rsi)
    mov 8(%rsi), %ebx              /* narrower: the low 32 bits */
    movzbl 8(%rsi), %ecx
    movsbq 15(%rsi), %r12          /* another displacement: from memory */
    shl $32, %rcx
    lea (%rbx,%rcx), %rax
    call hex
    mov %r12, %rax
    call hex
    lea buf(%rip), %rsi
    mov %rsi, %rdi
    mov $0x0102030405060708, %rax
    mov %rax, (%rsi)
    movb $0x99, (%rdi)             /* the same byte through another register */
    mov (%rsi), %rax
    call hex
    lea buf(%rip), %rsi
    mov $0x5555666677778888, %rax
    mov %rax, (%rsi)
    mov $5, %ebx
    xchg %rbx, (%rsi)              /* a locked exchange writes the bytes in between */
    mov (%rsi), %rax
    add %rbx, %rax
    call hex
    lea buf(%rip), %rsi
    movl $0xdeadbeef, 4(%rsi)      /* 4 bytes, then 8 read back across them */
    mov (%rsi), %rax
    call hex
    /* In a loop: every round stores a double's bits and reads the pair back. */
    lea buf(%rip), %rsi
    mov $1000, %ecx
    xor %r9d, %r9d
    mov $0x0123456789abcdef, %r8
    mov $0x9e3779b97f4a7c15, %r10
1:  movq %r8, %xmm2
    movsd %xmm2, 16(%rsi)
    movupd 16(%rsi), %xmm3
    pextrq $1, %xmm3, %rax
    movq %xmm3, %rdx
    add %rdx, %r9
    xor %rax, %r9
    rol $7, %r9
    mov %r9, 24(%rsi)              /* the high half, read back next round */
    imul %r10, %r8
    add $3, %r8
    dec %ecx
    jnz 1b
    mov %r9, %rax
    call hex
    mov $60, %eax
    xor %edi, %edi
    syscall
    .data
    .balign 16
buf: .quad 0xaaaaaaaaaaaaaaaa, 0xbbbbbbbbbbbbbbbb, 0xcccccccccccccccc, 0xdddddddddddddddd
