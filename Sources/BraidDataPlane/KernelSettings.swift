import BraidCore

/// Per-network-namespace sysctls the data plane depends on.
public enum KernelSettings {
    public static let fastOpen = "net.ipv4.tcp_fastopen"

    /// Makes sure `net.ipv4.tcp_fastopen` has the client (0x1) or server (0x2) bit. Measured on
    /// Linux 6.18: when a listener gets a cookieless SYN with data but the server bit is clear,
    /// the MPTCP connection falls back to plain TCP (MPCapableDataFallback), silently losing
    /// multipath. The value before goes to `state` first, so a clean stop gives it back even
    /// after a crash. Returns the old and new values when it changed anything.
    @discardableResult
    public static func enableFastOpen(server: Bool, state: KernelStateFile) throws -> (old: String, new: String)? {
        try state.update(fastOpen) { current in
            guard let value = Int(current.filter { !$0.isWhitespace }) else {
                throw SettingsError(description: "\(fastOpen) is not a number (\(current))")
            }
            return "\(value | (server ? 0x2 : 0x1))"
        }
    }

    public struct SettingsError: Error, CustomStringConvertible {
        public var description: String
    }
}
