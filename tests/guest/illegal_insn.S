/* Prints a line, then executes an instruction Kiln does not implement (AVX vzeroupper). */
    .globl _start
    .text
_start:
    mov $1, %eax
    mov $1, %edi
    lea msg(%rip), %rsi
    mov $len, %edx
    syscall
    vzeroupper
    mov $60, %eax
    xor %edi, %edi
    syscall
    .section .rodata
msg: .ascii "before the unimplemented instruction\n"
    .set len, . - msg
