import BraidCore

/// The concentrator's addresses, and which one each uplink dials: an uplink reaches the
/// concentrator over its own address family, so an IPv6-only uplink (LTE behind 464XLAT) carries
/// subflows to the concentrator's IPv6 address next to IPv4-only uplinks to its IPv4 address, in
/// one MPTCP session. Sans-I/O: told what the configuration resolved to and what the concentrator
/// announced, it answers which address to use.
///
/// Where other-family addresses come from, and why not from RFC 8684 ADD_ADDR: an ADD_ADDR's
/// HMAC is keyed with the MPTCP keys that MP_CAPABLE sends in the clear, so anyone on the path
/// can forge one and have the gateway open subflows (carrying the LAN's bytes) to a host of
/// their choosing. The gateway runs the userspace path manager, which ignores ADD_ADDR unless
/// told otherwise, and it never follows them. Addresses come only from `option server` (an
/// address, or a name's A and AAAA records) and from the concentrator over the TLS control
/// channel, which is authenticated by its certificate.
struct ConcentratorAddresses: Equatable, Sendable {
    /// From `option server`: the address, or what its name resolved to, in the resolver's order.
    var configured: [IPAddress]
    /// What the concentrator announced over the control channel (`ControlMessage.addresses`).
    var announced: [IPAddress] = []

    init(configured: [IPAddress], announced: [IPAddress] = []) {
        self.configured = configured
        self.announced = announced
    }

    /// Every known address, configured ones first, without repeats.
    var all: [IPAddress] {
        var out: [IPAddress] = []
        for a in configured + announced where !out.contains(a) { out.append(a) }
        return out
    }

    /// Whether there are addresses of both families (connections must then be able to take
    /// subflows of both: AF_INET6 sockets).
    var bothFamilies: Bool {
        let list = all
        return list.contains(where: \.isIPv4) && list.contains(where: { !$0.isIPv4 })
    }

    /// The address an uplink of `family`'s family dials: a configured one first (the operator's
    /// word, or DNS), else an announced one.
    func address(sameFamilyAs family: IPAddress) -> IPAddress? {
        all.first { $0.isIPv4 == family.isIPv4 }
    }

    /// Whether a connection to `a` is one of ours (the path manager manages only those).
    func contains(_ a: IPAddress) -> Bool {
        configured.contains(a) || announced.contains(a)
    }

    /// Families in order of preference: the first configured address's family first, so a
    /// dual-stack uplink keeps using the family the operator named.
    private var families: [Bool] {
        let firstIsIPv4 = all.first?.isIPv4 ?? true
        return [firstIsIPv4, !firstIsIPv4]
    }

    /// The path an uplink with `addresses` takes to the concentrator: its first address of the
    /// preferred family that the concentrator also has, and the concentrator's address of that
    /// family. nil when the uplink and the concentrator share no family.
    func path(from addresses: [IPAddress]) -> (source: IPAddress, server: IPAddress)? {
        for ipv4 in families {
            guard let server = all.first(where: { $0.isIPv4 == ipv4 }),
                let source = addresses.first(where: { $0.isIPv4 == ipv4 })
            else { continue }
            return (source, server)
        }
        return nil
    }

    /// Keeps what a control-channel announcement may add: unicast addresses that can be dialled
    /// (`IPAddress.isDialableUnicast`), at most one per family is used anyway.
    static func dialable(_ addresses: [IPAddress]) -> [IPAddress] {
        addresses.filter(\.isDialableUnicast)
    }
}
