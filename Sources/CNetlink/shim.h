// CNetlink: libmnl plus the kernel's netlink, rtnetlink, generic netlink and MPTCP path-manager
// headers, so BraidNetlink can build and parse messages without writing its own netlink framing.
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/genetlink.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/mptcp.h>
#include <net/if.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
