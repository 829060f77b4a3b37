// CBraidLinux: Linux socket constants and tiny helpers that Glibc's Swift overlay does not export
// (transparent proxying, TCP Fast Open on connect, MPTCP's protocol number and its info
// getsockopt). Everything here is a constant or a one-line wrapper; policy lives in Swift.
#ifndef CBRAIDLINUX_H
#define CBRAIDLINUX_H

#include <stdint.h>

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

#endif
