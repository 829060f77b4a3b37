/// A TCP port or an inclusive range of ports, as `deny_port` and `allow_port` write them: `25` or
/// `8000-8080`.
public struct PortRange: Hashable, Sendable, CustomStringConvertible {
    public let lower: UInt16
    public let upper: UInt16

    /// A range of ports 1-65535 with `lower <= upper`; nil otherwise.
    public init?(_ lower: UInt16, _ upper: UInt16) {
        guard lower > 0, lower <= upper else { return nil }
        self.lower = lower
        self.upper = upper
    }

    /// Parses `N` or `LOW-HIGH` (decimal digits only, 1-65535, LOW <= HIGH).
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }),
            let low = UInt16(parts[0]), let high = UInt16(parts[parts.count - 1])
        else { return nil }
        self.init(low, high)
    }

    public func contains(_ port: UInt16) -> Bool {
        (lower...upper).contains(port)
    }

    public var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
