import BraidCore

/// An IPv4 address carried inside an IPv6 address by one of the transition forms, and which form.
/// A concentrator that judged only the IPv6 address would connect through a NAT64 translator, a
/// 6to4 or Teredo relay, or the kernel's own IPv4-compatible handling to an IPv4 address it refuses.
public struct EmbeddedIPv4: Hashable, Sendable, CustomStringConvertible {
    public enum Form: String, Sendable, CaseIterable {
        /// `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2): the kernel connects to the IPv4 address itself.
        case ipv4Mapped = "IPv4-mapped ::ffff:0:0/96"
        /// `::a.b.c.d` (RFC 4291 §2.5.5.1, deprecated): IPv4 in the last 32 bits.
        case ipv4Compatible = "IPv4-compatible ::/96"
        /// NAT64 well-known prefix (RFC 6052): IPv4 in the last 32 bits.
        case nat64 = "NAT64 64:ff9b::/96"
        /// NAT64 local-use prefix (RFC 8215) used whole, laid out for a /48 (RFC 6052 §2.2): IPv4
        /// in bits 48-63 and 72-87, around the zero "u" octet.
        case nat64LocalUse48 = "NAT64 64:ff9b:1::/48"
        /// A /96 out of the same prefix (a translator's usual choice): IPv4 in the last 32 bits.
        case nat64LocalUse96 = "NAT64 64:ff9b:1::/48 as /96"
        /// 6to4 (RFC 3056): IPv4 in bits 16-47.
        case sixToFour = "6to4 2002::/16"
        /// Teredo server (RFC 4380 §4): IPv4 in bits 32-63.
        case teredoServer = "Teredo 2001::/32 server"
        /// Teredo client (RFC 4380 §4): IPv4 in the last 32 bits, every bit inverted.
        case teredoClient = "Teredo 2001::/32 client"
    }

    public var form: Form
    public var address: IPAddress

    public init(_ form: Form, _ address: IPAddress) {
        self.form = form
        self.address = address
    }

    /// Every IPv4 address `address` embeds, in the order of `Form`; empty for IPv4 and for IPv6
    /// outside these prefixes. `::` and `::1` are not IPv4-compatible addresses (RFC 4291).
    public static func all(in address: IPAddress) -> [EmbeddedIPv4] {
        guard case .v6(let b) = address, b.count == 16 else { return [] }
        func v4(_ i: Int, _ j: Int, _ k: Int, _ l: Int, invert: Bool = false) -> IPAddress {
            let bytes = [b[i], b[j], b[k], b[l]].map { invert ? ~$0 : $0 }
            return IPAddress(bytes: bytes)!
        }
        func starts(_ prefix: [UInt8]) -> Bool { b.starts(with: prefix) }
        let zero10 = [UInt8](repeating: 0, count: 10)
        var out: [EmbeddedIPv4] = []
        if starts(zero10 + [0xff, 0xff]) {
            out.append(.init(.ipv4Mapped, v4(12, 13, 14, 15)))
        } else if starts(zero10 + [0, 0]), b[12..<15].contains(where: { $0 != 0 }) || b[15] > 1 {
            out.append(.init(.ipv4Compatible, v4(12, 13, 14, 15)))
        } else if starts([0x00, 0x64, 0xff, 0x9b] + [UInt8](repeating: 0, count: 8)) {
            out.append(.init(.nat64, v4(12, 13, 14, 15)))
        } else if starts([0x00, 0x64, 0xff, 0x9b, 0x00, 0x01]) {
            // Which layout the translator uses is its operator's choice; the two usual ones are
            // read. Where one layout holds the address, the other reads zeros (its bits are the
            // other's prefix or suffix, zero by RFC 6052 §2.2): a zero candidate is no address.
            // Both non-zero: both are judged, and either refused refuses the destination.
            let layouts = [
                EmbeddedIPv4(.nat64LocalUse48, v4(6, 7, 9, 10)), EmbeddedIPv4(.nat64LocalUse96, v4(12, 13, 14, 15)),
            ]
            let candidates = layouts.filter { $0.address != .v4(0) }
            out += candidates.isEmpty ? [layouts[1]] : candidates
        } else if starts([0x20, 0x02]) {
            out.append(.init(.sixToFour, v4(2, 3, 4, 5)))
        } else if starts([0x20, 0x01, 0x00, 0x00]) {
            out.append(.init(.teredoServer, v4(4, 5, 6, 7)))
            out.append(.init(.teredoClient, v4(12, 13, 14, 15, invert: true)))
        }
        return out
    }

    /// "172.16.5.1 in NAT64 64:ff9b::/96"
    public var description: String { "\(address) in \(form.rawValue)" }
}
