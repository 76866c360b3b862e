/* lock xadd, lock cmpxchg (success and failure), xchg with memory, lock inc/and/or; prints
 * results as hex through write(2). No libc. */
    .globl _start
    .text
#include "print_hex.inc"
_start:
    movq $100, cell(%rip)
    mov $5, %rax
    lock xadd %rax, cell(%rip)          /* rax = 100, cell = 105 */
    call hex
    mov cell(%rip), %rax
    call hex
    mov $105, %rax
    mov $7, %rcx
    lock cmpxchg %rcx, cell(%rip)       /* success: cell = 7, ZF = 1 */
    setz %al
    movzbl %al, %eax
    call hex
    mov $999, %rax
    mov $8, %rcx
    lock cmpxchg %rcx, cell(%rip)       /* failure: rax = 7 */
    call hex
    mov $0x1234, %rax
    xchg %rax, cell(%rip)
    call hex
    lock incq cell(%rip)
    lock andq $0xff0, cell(%rip)
    lock orq $0x7f000000, cell(%rip)
    mov cell(%rip), %rax
    call hex
    mov $0x11, %eax
    mov $0x22, %ebx
    xchg %eax, %ebx
    shl $8, %rax
    or %rbx, %rax
    call hex
    movl $0xffffffff, %ecx
    movl $1, cell32(%rip)
    lock xaddl %ecx, cell32(%rip)
    mov cell32(%rip), %eax
    call hex
    mov $60, %eax
    xor %edi, %edi
    syscall
    .data
cell: .quad 0
cell32: .long 0
