/// Bounds of the rules a concentrator pushes to a class's gateways (control message
/// `operatorRules`), shared by `braid check` on the concentrator and by the codec on both ends, so
/// that a set the check passes always fits in one frame and a gateway never buffers more.
public enum OperatorRuleLimits {
    /// Rules pushed to one class's gateways, at most.
    public static let maximumRules = 64
    /// Largest payload of an `operatorRules` frame; other control messages stay far below it.
    public static let maximumPayloadSize = 16_384
    /// Longest rule name in bytes (a uci section name, or `@rule[N]`).
    public static let maximumNameSize = 64
    /// Entries of one list (dest, src, dest_port, src_mac) of one rule, at most: one count byte.
    public static let maximumListCount = 255

    /// Whether `name` can travel as a rule's name and end up in an nft comment: uci's section-name
    /// characters plus the `@`, `[` and `]` of an anonymous section's `@rule[N]`, nothing to escape.
    public static func isValidName(_ name: String) -> Bool {
        let utf8 = Array(name.utf8)
        guard !utf8.isEmpty, utf8.count <= maximumNameSize else { return false }
        return utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f
                || c == 0x40 || c == 0x5b || c == 0x5d
        }
    }

    /// Bytes one rule takes in the payload: its name (a length byte and the bytes), action and
    /// protocol bytes, then each list as a count byte and its entries (a prefix: family, length
    /// and 4 or 16 address bytes; a port range: two 16-bit ports; a MAC address: 6 bytes).
    public static func encodedSize(
        name: String, destinations: [IPPrefix], sources: [IPPrefix], portRanges: Int, macAddresses: Int
    ) -> Int {
        let prefixes = { (list: [IPPrefix]) in 1 + list.reduce(0) { $0 + 2 + ($1.address.isIPv4 ? 4 : 16) } }
        return 1 + name.utf8.count + 2 + prefixes(destinations) + prefixes(sources) + 1 + 4 * portRanges + 1
            + 6 * macAddresses
    }

    /// Bytes of the whole payload ahead of the rules: the rule count.
    public static let payloadHeaderSize = 1
}
