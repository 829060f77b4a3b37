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
