// CBraidLinux: Linux socket constants and tiny helpers that Glibc's Swift overlay does not export
// (transparent proxying, TCP Fast Open on connect, MPTCP's protocol number and its info
// getsockopt, splice, epoll and eventfd), and the capability drop, which must run on every thread
// (see braid_keep_capabilities). Everything else here is a constant or a one-line wrapper; policy lives in Swift.
#ifndef CBRAIDLINUX_H
#define CBRAIDLINUX_H

#include <stdint.h>
// Glibc's Swift module map leaves these out; the data plane's reactor needs them.
#include <sys/epoll.h>
#include <sys/eventfd.h>

/// IPPROTO_MPTCP (262) from <linux/in.h>; older libcs do not define it.
extern const int braid_IPPROTO_MPTCP;
extern const int braid_SOL_IP;
extern const int braid_SOL_IPV6;
extern const int braid_SOL_TCP;
extern const int braid_IP_TRANSPARENT;
extern const int braid_IPV6_TRANSPARENT;
extern const int braid_TCP_FASTOPEN;
extern const int braid_TCP_FASTOPEN_CONNECT;
extern const int braid_TCP_FASTOPEN_NO_COOKIE;

/// Arms SO_LINGER {on, 0} so the next close() sends a reset instead of a FIN: how a reset from one
/// side of the relay is carried to the other. Returns 0 or -1 with errno set.
int braid_set_linger_reset(int fd);

/// Number of subflows of an MPTCP socket (MPTCP_INFO, mptcpi_subflows), or -1 with errno set.
int braid_mptcp_subflows(int fd);

/// Subflows of an MPTCP socket that are established (or closing only towards us), the first one
/// included (MPTCP_TCPINFO), or -1 with errno set (not an MPTCP socket).
int braid_mptcp_live_subflows(int fd);

/// splice(2) between a socket and a pipe, non-blocking, pages moved rather than copied: the relay's
/// zero-copy hot path. Glibc's Swift overlay does not export splice (it needs _GNU_SOURCE).
/// Returns bytes moved, 0 at end of input, or -1 with errno set.
long braid_splice(int fd_in, int fd_out, unsigned long len, int more);

/// A non-blocking, close-on-exec pipe whose capacity is set to `size` bytes if possible (F_SETPIPE_SZ;
/// the kernel rounds up to pages and caps at /proc/sys/fs/pipe-max-size). Returns 0 or -1 with errno.
/// fds[0] is the read end, fds[1] the write end; *capacity gets the resulting capacity.
int braid_pipe(int fds[2], int size, int *capacity);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC. Returns the fd or -1 with errno set.
int braid_accept(int fd, void *addr, unsigned int *len);

/// epoll flags as plain integers (Swift imports them as an enum type that does not combine).
extern const unsigned int braid_EPOLLIN;
extern const unsigned int braid_EPOLLOUT;
extern const unsigned int braid_EPOLLRDHUP;
extern const unsigned int braid_EPOLLERR;
extern const unsigned int braid_EPOLLHUP;
extern const unsigned int braid_EPOLLET;
extern const unsigned int braid_EPOLLEXCLUSIVE;

/// Reduces the capabilities of every thread of the process to `keep` (a bit mask of CAP_* numbers):
/// permitted and effective become what they held of `keep`, inheritable and ambient are cleared,
/// and, while CAP_SETPCAP is effective, every capability outside `keep` leaves the bounding set.
/// Linux keeps capabilities per thread and capset(2) changes only the caller's, so the other
/// threads (reactors, NIO's) are asked to do the same from a real-time signal handler, as libcap's
/// psx does; each thread's /proc status is then read back. Call it once the threads are running
/// and before any thread blocks that signal (libdispatch's do).
/// Returns 0, or -1 with errno set; *unconverged gets the number of threads that still hold more
/// than `keep` afterwards (they did not answer within a second).
int braid_keep_capabilities(uint64_t keep, int *unconverged);

/// The calling thread's permitted, effective and bounding sets, as bit masks. Returns 0 or -1.
int braid_capabilities(uint64_t *permitted, uint64_t *effective, uint64_t *bounding);

#endif
