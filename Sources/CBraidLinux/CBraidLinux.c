#include "CBraidLinux.h"

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
