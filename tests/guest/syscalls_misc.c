/* The system calls build tools use, each checked for its result: descriptors (pipe2, dup3,
 * fcntl), readiness (poll, ppoll, select, epoll, eventfd), sockets (socketpair), the *at
 * family, statx, faccessat2, memory (mremap, madvise, memfd_create), copies (sendfile,
 * copy_file_range), scheduling (sched_*), timing (clock_nanosleep), prctl and sysinfo. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#define CHECK(what, expr) printf("%-22s %s\n", what, (expr) ? "ok" : strerror(errno))

int main(void) {
    int p[2];
    CHECK("pipe2", pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
    CHECK("fcntl getfd", fcntl(p[0], F_GETFD) == FD_CLOEXEC);
    CHECK("fcntl getfl", (fcntl(p[0], F_GETFL) & O_NONBLOCK) != 0);
    char b[64];
    CHECK("nonblocking read", read(p[0], b, 1) == -1 && errno == EAGAIN);
    int d = dup3(p[1], 100, 0);
    CHECK("dup3", d == 100 && fcntl(100, F_GETFD) == 0);
    CHECK("write via dup", write(100, "xyz", 3) == 3);
    struct pollfd pf = {p[0], POLLIN, 0};
    CHECK("poll", poll(&pf, 1, 1000) == 1 && (pf.revents & POLLIN));
    struct timespec ts = {0, 1000000};
    CHECK("ppoll", ppoll(&pf, 1, &ts, NULL) == 1);
    fd_set rs; FD_ZERO(&rs); FD_SET(p[0], &rs);
    struct timeval tv = {1, 0};
    CHECK("select", select(p[0] + 1, &rs, 0, 0, &tv) == 1 && FD_ISSET(p[0], &rs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ull}, out[4];
    CHECK("epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    int efd = eventfd(5, EFD_NONBLOCK);
    struct epoll_event ev2 = {.events = EPOLLIN, .data.u64 = 42};
    CHECK("epoll_ctl eventfd", epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev2) == 0);
    int n = epoll_wait(ep, out, 4, 1000);
    unsigned long long sum = 0;
    for (int i = 0; i < n; i++) sum += out[i].data.u64;
    CHECK("epoll_wait", n == 2 && sum == 0x1122334455667788ull + 42);
    uint64_t v;
    CHECK("eventfd read", read(efd, &v, 8) == 8 && v == 5);
    n = epoll_pwait(ep, out, 4, 0, NULL);
    CHECK("epoll_pwait", n == 1 && out[0].data.u64 == 0x1122334455667788ull);
    CHECK("read pipe", read(p[0], b, 3) == 3 && memcmp(b, "xyz", 3) == 0);

    int sv[2];
    CHECK("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK("send/recv", send(sv[0], "ping", 4, 0) == 4 && recv(sv[1], b, 4, 0) == 4 && !memcmp(b, "ping", 4));

    char dir[] = "/tmp/kiln-sys-XXXXXX";
    CHECK("mkdtemp", mkdtemp(dir) != NULL);
    int dfd = open(dir, O_DIRECTORY | O_RDONLY);
    int f = openat(dfd, "a.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK("openat", f >= 0);
    CHECK("write", write(f, "hello, world\n", 13) == 13);
    struct stat st;
    CHECK("fstatat", fstatat(dfd, "a.txt", &st, 0) == 0 && st.st_size == 13);
    /* statx through the raw call (musl 1.2.3 has no wrapper): stx_mode at 0x1c, stx_size at 0x28. */
    unsigned char sx[256];
    memset(sx, 0xee, sizeof sx);
    long sr = syscall(SYS_statx, dfd, "a.txt", 0, 0x200 | 0x2 /* SIZE | MODE */, sx);
    unsigned short mode; unsigned long long size;
    memcpy(&mode, sx + 0x1c, 2); memcpy(&size, sx + 0x28, 8);
    CHECK("statx", sr == 0 && size == 13 && (mode & 0777) == 0644);
    CHECK("faccessat2", syscall(SYS_faccessat2, dfd, "a.txt", R_OK | W_OK, AT_EACCESS) == 0);
    CHECK("renameat", renameat(dfd, "a.txt", dfd, "b.txt") == 0);
    int g = openat(dfd, "c.txt", O_CREAT | O_RDWR, 0600);
    off_t off = 0;
    CHECK("sendfile from 0", sendfile(g, f, &off, 13) == 13 && off == 13);
    loff_t in = 0, outo = 13;
    CHECK("copy_file_range", copy_file_range(f, &in, g, &outo, 5, 0) == 5);
    CHECK("fstat copy", fstat(g, &st) == 0 && st.st_size == 18);
    CHECK("pread", pread(g, b, 18, 0) == 18 && !memcmp(b, "hello, world\nhello", 18));
    CHECK("unlinkat", unlinkat(dfd, "b.txt", 0) == 0 && unlinkat(dfd, "c.txt", 0) == 0);
    CHECK("rmdir", rmdir(dir) == 0);

    int m = memfd_create("kiln-test", MFD_CLOEXEC);
    CHECK("memfd_create", m >= 0 && ftruncate(m, 8192) == 0);
    char *mp = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    strcpy(mp + 4096, "shared");
    CHECK("memfd pread", pread(m, b, 7, 4096) == 7 && !strcmp(b, "shared"));
    char *a = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    strcpy(a, "moved");
    char *r = mremap(a, 4096, 1 << 20, MREMAP_MAYMOVE);
    CHECK("mremap", r != MAP_FAILED && !strcmp(r, "moved"));
    r[(1 << 20) - 1] = 1;
    CHECK("madvise", madvise(r, 1 << 20, MADV_DONTNEED) == 0 && r[0] == 0);

    struct sched_param sp;
    CHECK("sched_getscheduler", sched_getscheduler(0) == SCHED_OTHER);
    CHECK("sched_getparam", sched_getparam(0, &sp) == 0 && sp.sched_priority == 0);
    CHECK("priority max/min", sched_get_priority_max(SCHED_FIFO) == 99 && sched_get_priority_min(SCHED_FIFO) == 1);
    cpu_set_t cs;
    CHECK("sched_getaffinity", sched_getaffinity(0, sizeof cs, &cs) == 0 && CPU_COUNT(&cs) >= 1);
    CHECK("sched_yield", sched_yield() == 0);
    struct timespec rr;
    CHECK("sched_rr_get_interval", sched_rr_get_interval(0, &rr) == 0);
    struct timespec t0, t1, nap = {0, 2000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK("clock_nanosleep", clock_nanosleep(CLOCK_MONOTONIC, 0, &nap, NULL) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK("slept", (t1.tv_sec - t0.tv_sec) * 1000000000L + t1.tv_nsec - t0.tv_nsec >= 2000000);
    char name[16] = {0};
    CHECK("prctl name", prctl(PR_SET_NAME, "kiln-guest") == 0 && prctl(PR_GET_NAME, name) == 0 &&
                            !strcmp(name, "kiln-guest"));
    struct sysinfo si;
    CHECK("sysinfo", sysinfo(&si) == 0 && si.totalram > 0 && si.mem_unit >= 1);
    CHECK("syncfs", syncfs(f) == 0);
    return 0;
}
