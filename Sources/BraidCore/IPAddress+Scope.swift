extension IPAddress {
    /// Whether a host elsewhere could dial this address: not unspecified, loopback, link-local or
    /// multicast (RFC 6890's special-purpose blocks that never leave a host or a link). Private and
    /// documentation ranges pass: a concentrator may well be reached at one.
    public var isDialableUnicast: Bool {
        let b = bytes
        if isIPv4 {
            return b[0] != 0 && b[0] != 127 && !(b[0] == 169 && b[1] == 254) && b[0] < 224
        }
        let loopbackOrUnspecified = b[0..<15].allSatisfy { $0 == 0 } && b[15] <= 1
        let linkLocal = b[0] == 0xfe && (b[1] & 0xc0) == 0x80
        let v4Mapped = b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xff && b[11] == 0xff
        return !loopbackOrUnspecified && !linkLocal && !v4Mapped && b[0] != 0xff
    }
}
