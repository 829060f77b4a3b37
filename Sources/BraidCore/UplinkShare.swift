/// The most an uplink may carry of a gateway's bonded bytes, in percent: an uplink's own
/// `option share`, or an operator class's `list uplink_share 'UPLINK=N'` pushed over the control
/// channel. Shared by the configuration, the control protocol and the gateway's steering.
public struct UplinkShare: Hashable, Sendable, CustomStringConvertible {
    /// The gateway's uplink section name.
    public var uplink: String
    /// 0 to 100; 100 is no cap.
    public var percent: UInt8

    public init(uplink: String, percent: UInt8) {
        self.uplink = uplink
        self.percent = percent
    }

    /// Reads `UPLINK=N` (the class option's form): a section name of letters, digits and '_', then
    /// 0 to 100. Nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= Self.maximumNameBytes,
            parts[0].utf8.allSatisfy({ $0 == 0x5f || (0x30...0x39).contains($0) || (0x41...0x5a).contains($0)
                || (0x61...0x7a).contains($0) }),
            parts[1].utf8.count <= 3, let n = UInt8(parts[1]), n <= 100
        else { return nil }
        self.init(uplink: String(parts[0]), percent: n)
    }

    /// Longest uplink name a share may name, so a full list fits in one control frame.
    public static let maximumNameBytes = 64

    public var description: String { "\(uplink)=\(percent)" }
}
