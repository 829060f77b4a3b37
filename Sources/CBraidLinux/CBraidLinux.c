#define _GNU_SOURCE
#include "CBraidLinux.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/epoll.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <linux/mptcp.h>
#include <string.h>

#include <dirent.h>
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef SOL_MPTCP
#define SOL_MPTCP 284
#endif

const int braid_IPPROTO_MPTCP = IPPROTO_MPTCP;
const int braid_SOL_IP = SOL_IP;
const int braid_SOL_IPV6 = SOL_IPV6;
const int braid_SOL_TCP = SOL_TCP;
const int braid_IP_TRANSPARENT = IP_TRANSPARENT;
const int braid_IPV6_TRANSPARENT = IPV6_TRANSPARENT;
const int braid_TCP_FASTOPEN = TCP_FASTOPEN;
const int braid_TCP_FASTOPEN_CONNECT = TCP_FASTOPEN_CONNECT;
const int braid_TCP_FASTOPEN_NO_COOKIE = TCP_FASTOPEN_NO_COOKIE;

int braid_set_linger_reset(int fd) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

int braid_mptcp_subflows(int fd) {
    struct mptcp_info info;
    socklen_t len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (getsockopt(fd, SOL_MPTCP, MPTCP_INFO, &info, &len) < 0) return -1;
    return info.mptcpi_subflows;
}

int braid_mptcp_live_subflows(int fd) {
    /* MPTCP_TCPINFO: a header, then one tcp_info per subflow while they fit. The first subflow
       stays listed after it closed (the connection keeps it for good), so the states decide. */
    struct {
        struct mptcp_subflow_data d;
        struct tcp_info info[8];
    } buf;
    memset(&buf, 0, sizeof(buf));
    buf.d.size_subflow_data = sizeof(buf.d);
    buf.d.size_user = sizeof(struct tcp_info);
    socklen_t len = sizeof(buf);
    if (getsockopt(fd, SOL_MPTCP, MPTCP_TCPINFO, &buf, &len) < 0) return -1;
    unsigned int listed = buf.d.num_subflows, copied = listed < 8 ? listed : 8;
    int live = (int)(listed - copied); /* not copied: counted as live */
    for (unsigned int i = 0; i < copied; i++) {
        unsigned char state = buf.info[i].tcpi_state;
        if (state == 1 /* ESTABLISHED */ || state == 8 /* CLOSE_WAIT: still sends */) live++;
    }
    return live;
}

long braid_splice(int fd_in, int fd_out, unsigned long len, int more) {
    unsigned int flags = SPLICE_F_NONBLOCK | SPLICE_F_MOVE | (more ? SPLICE_F_MORE : 0);
    return (long)splice(fd_in, NULL, fd_out, NULL, len, flags);
}

int braid_pipe(int fds[2], int size, int *capacity) {
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
    /* A failed resize (size above pipe-max-size for an unprivileged user) keeps the default. */
    if (size > 0) (void)fcntl(fds[0], F_SETPIPE_SZ, size);
    int cap = fcntl(fds[0], F_GETPIPE_SZ);
    if (capacity) *capacity = cap > 0 ? cap : 65536;
    return 0;
}

int braid_accept(int fd, void *addr, unsigned int *len) {
    return accept4(fd, (struct sockaddr *)addr, (socklen_t *)len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

const unsigned int braid_EPOLLIN = EPOLLIN;
const unsigned int braid_EPOLLOUT = EPOLLOUT;
const unsigned int braid_EPOLLRDHUP = EPOLLRDHUP;
const unsigned int braid_EPOLLERR = EPOLLERR;
const unsigned int braid_EPOLLHUP = EPOLLHUP;
const unsigned int braid_EPOLLET = EPOLLET;
const unsigned int braid_EPOLLEXCLUSIVE = EPOLLEXCLUSIVE;

/* ---- capabilities on every thread (braid_keep_capabilities) ---- */

/* What each thread applies, set before any thread is signalled and read-only while they run. */
static struct __user_cap_header_struct braid_cap_header;
static struct __user_cap_data_struct braid_cap_data[2];
static uint64_t braid_cap_bounding_drop;
static int braid_cap_last;
static atomic_int braid_cap_answers;

/* Only system calls: it also runs inside a signal handler. */
static int braid_cap_apply(void) {
    int rc = 0;
    /* The bounding set first: dropping from it needs CAP_SETPCAP, which capset takes away. */
    for (int c = 0; c <= braid_cap_last && c < 64; c++) {
        if ((braid_cap_bounding_drop >> c) & 1) {
            if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) rc = -1;
        }
    }
    /* EINVAL before Linux 4.3, which had no ambient set to clear. */
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (syscall(SYS_capset, &braid_cap_header, braid_cap_data) != 0) rc = -1;
    return rc;
}

static void braid_cap_handler(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)info;
    (void)context;
    int saved = errno;
    (void)braid_cap_apply();
    atomic_fetch_add(&braid_cap_answers, 1);
    errno = saved;
}

/* A hex field ("CapPrm:", "CapBnd:") of /proc/self/task/TID/status; 0 with *ok = 0 if unreadable. */
static uint64_t braid_task_caps(long tid, const char *field, int *ok) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%ld/status", tid);
    FILE *f = fopen(path, "re");
    *ok = 0;
    if (!f) return 0;
    char line[256];
    uint64_t value = 0;
    size_t n = strlen(field);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, n) == 0) {
            value = strtoull(line + n, NULL, 16);
            *ok = 1;
            break;
        }
    }
    fclose(f);
    return value;
}

/* True while the thread holds a capability outside `keep` that this call removes. */
static int braid_task_needs_drop(long tid, uint64_t keep) {
    int ok_prm, ok_bnd;
    uint64_t prm = braid_task_caps(tid, "CapPrm:", &ok_prm);
    uint64_t bnd = braid_task_caps(tid, "CapBnd:", &ok_bnd);
    if (!ok_prm) return 0; /* the thread has exited */
    return (prm & ~keep) != 0 || (ok_bnd && (bnd & braid_cap_bounding_drop) != 0);
}

static uint64_t braid_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int braid_capabilities(uint64_t *permitted, uint64_t *effective, uint64_t *bounding) {
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    *permitted = (uint64_t)data[1].permitted << 32 | data[0].permitted;
    *effective = (uint64_t)data[1].effective << 32 | data[0].effective;
    int ok;
    *bounding = braid_task_caps((long)syscall(SYS_gettid), "CapBnd:", &ok);
    return ok ? 0 : -1;
}

int braid_keep_capabilities(uint64_t keep, int *unconverged) {
    *unconverged = 0;
    braid_cap_last = 40;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f) {
        if (fscanf(f, "%d", &braid_cap_last) != 1) braid_cap_last = 40;
        fclose(f);
    }
    uint64_t permitted, effective, bounding;
    if (braid_capabilities(&permitted, &effective, &bounding) != 0) return -1;
    uint64_t kept = permitted & keep;
    braid_cap_header.version = _LINUX_CAPABILITY_VERSION_3;
    braid_cap_header.pid = 0;
    memset(braid_cap_data, 0, sizeof(braid_cap_data));
    braid_cap_data[0].permitted = braid_cap_data[0].effective = (uint32_t)kept;
    braid_cap_data[1].permitted = braid_cap_data[1].effective = (uint32_t)(kept >> 32);
    /* Without CAP_SETPCAP (an unprivileged service) the bounding set stays as the parent left it. */
    braid_cap_bounding_drop = (effective >> CAP_SETPCAP) & 1 ? bounding & ~keep : 0;

    int sig = SIGRTMIN + 5;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = braid_cap_handler;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&action.sa_mask);
    if (sigaction(sig, &action, NULL) != 0) return -1;

    long self = (long)syscall(SYS_gettid);
    int rc = braid_cap_apply();
    int saved = errno;
    pid_t pid = getpid();
    /* Rounds: a thread started by one not yet converted inherits the old sets, so list again. */
    for (int round = 0; round < 5; round++) {
        DIR *dir = opendir("/proc/self/task");
        if (!dir) {
            rc = -1;
            saved = errno;
            break;
        }
        atomic_store(&braid_cap_answers, 0);
        int asked = 0;
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            long tid = strtol(e->d_name, NULL, 10);
            if (tid <= 0 || tid == self || !braid_task_needs_drop(tid, keep)) continue;
            if (syscall(SYS_tgkill, pid, tid, sig) == 0) asked++;
        }
        closedir(dir);
        if (asked == 0) break;
        uint64_t deadline = braid_now_ms() + 1000;
        while (atomic_load(&braid_cap_answers) < asked && braid_now_ms() < deadline) {
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
            nanosleep(&pause, NULL);
        }
    }
    DIR *dir = opendir("/proc/self/task");
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            long tid = strtol(e->d_name, NULL, 10);
            if (tid > 0 && braid_task_needs_drop(tid, keep)) (*unconverged)++;
        }
        closedir(dir);
    }
    /* The handler stays: a thread that answers late must not meet the signal's default action,
       which ends the process. */
    errno = saved;
    return rc;
}
