/// An Ethernet (EUI-48) address, as `list src_mac` writes it: six hexadecimal octets separated
/// by ':' or '-', either case.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public let octets: [UInt8]

    /// Parses `02:00:5e:10:00:01` or `02-00-5E-10-00-01`; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: text.contains("-") ? "-" : ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var octets: [UInt8] = []
        for p in parts {
            guard (1...2).contains(p.count), let o = UInt8(p, radix: 16) else { return nil }
            octets.append(o)
        }
        self.octets = octets
    }

    /// The address from its six octets (as a control message carries it); nil for another count.
    public init?(octets: [UInt8]) {
        guard octets.count == 6 else { return nil }
        self.octets = octets
    }

    /// Lower case, colon-separated, two digits an octet: the spelling nft and `ip link` use.
    public var description: String {
        octets.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}
