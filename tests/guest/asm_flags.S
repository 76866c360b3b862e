/* Flag results that programs read directly: pushfq after arithmetic, lahf/sahf, cmc/stc/clc,
 * adc chains, setcc after test, cmov zero-extension. Printed as hex; no libc. */
    .globl _start
    .text
#include "print_hex.inc"
flags:                           /* rax = arithmetic flags at entry */
    pushfq
    pop %rax
    and $0x8d5, %eax
    ret
_start:
    mov $0x7f, %al
    add $1, %al
    call flags
    call hex
    mov $0, %eax
    sub $1, %eax
    call flags
    call hex
    stc
    cmc
    call flags
    call hex
    mov $0xffffffffffffffff, %rax
    mov $1, %rbx
    add %rbx, %rax
    mov $0, %rcx
    adc $0, %rcx                  /* carry chain: rcx = 1 */
    mov %rcx, %rax
    call hex
    mov $0x80, %ah
    xor %al, %al
    sahf                          /* SF = 1 */
    lahf
    shr $8, %eax
    and $0xd5, %eax
    call hex
    mov $0x1234567800000000, %rdx
    mov $0x1111111111111111, %rax
    xor %ecx, %ecx
    test %ecx, %ecx
    cmovnz %edx, %eax             /* not taken, but eax is still zero-extended */
    call hex
    mov $5, %ecx
    cmp $7, %ecx
    setb %al
    setl %bl
    setg %cl
    shl $8, %eax
    movzbl %bl, %ebx
    or %ebx, %eax
    shl $8, %eax
    movzbl %cl, %ecx
    or %ecx, %eax
    and $0xffffff, %eax
    call hex
    mov $60, %eax
    xor %edi, %edi
    syscall
    .data
