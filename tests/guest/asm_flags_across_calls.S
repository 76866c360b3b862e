/* Flags a function leaves for its caller, as hand-written assembly returns a status: read
 * right at the return site (adc, jnc, seta), passed on through a function that only pops and
 * returns, and ignored where the return site writes the flags first. Looped so that the code
 * gets hot: compiled into regions whose calls are host calls waiting for their return.
 * Printed as hex; no libc. */
    .globl _start
    .text
#include "print_hex.inc"
is_odd:                          /* CF = bit 0 of rdi */
    bt $0, %rdi
    ret
through_pop:                     /* is_odd's flags, through a pop */
    push %rbx
    mov %rdi, %rbx
    call is_odd
    pop %rbx
    ret
twice_through:                   /* and through two returns */
    call through_pop
    ret
above:                           /* the flags of rdi - rsi */
    cmp %rsi, %rdi
    ret
_start:
    xor %r12d, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    xor %r15d, %r15d
    xor %ebp, %ebp
    mov $100000, %ebx
1:  mov %rbx, %rdi
    call is_odd
    adc $0, %r12                 /* CF read at the return site */
    mov %rbx, %rdi
    call through_pop
    jnc 2f
    add $3, %r13
2:  mov %rbx, %rdi
    call twice_through
    sbb $0, %rbp
    mov %rbx, %rdi
    mov $40000, %esi
    call above
    seta %al
    movzbl %al, %eax
    add %rax, %r14
    mov %rbx, %rdi
    call is_odd
    test $2, %bl                 /* the flags written before they are read */
    jz 3f
    inc %r15
3:  dec %rbx
    jnz 1b
    mov %r12, %rax
    call hex
    mov %r13, %rax
    call hex
    mov %r14, %rax
    call hex
    mov %r15, %rax
    call hex
    mov %rbp, %rax
    call hex
    mov $60, %eax
    xor %edi, %edi
    syscall
