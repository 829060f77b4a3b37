// CNftables: libnftables, the library behind nft(8). The gateway hands it whole rulesets so its
// interception table is applied atomically, the same way `nft -f` would, without a subprocess.
#include <nftables/libnftables.h>
