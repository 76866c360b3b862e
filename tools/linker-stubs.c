/* Linked into the `kiln` executable at a fixed address (tools/linker-wrapper). glibc's static
 * archive calls these functions only when they are linked in (weak references, tested against
 * null at run time); unlinked, they stand for nothing to do, which is what these do. The calls
 * sit in position-dependent code that cannot reach address 0 from above 2 GiB, so the linker
 * needs a definition nearby. */

/* The executable is not position-independent: nothing to relocate at start. */
void _dl_relocate_static_pie(void) {}

/* Thread-local destructors registered through __cxa_thread_atexit_impl: none. */
void __call_tls_dtors(void) {}

/* Destructors of a shared object being unloaded: the executable is not one. */
void __cxa_finalize(void *dso) { (void)dso; }

/* Left from the separate thread library. */
void __pthread_initialize_minimal(void) {}

/* Buffers of the C library's internal thread-local state: none allocated. */
void __glibc_tls_internal_free(void) {}

/* Helper threads of mq_notify and POSIX timers, restarted after fork: none. */
void __mq_notify_fork_subprocess(void) {}
void __timer_fork_subprocess(void) {}
