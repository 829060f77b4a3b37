import BraidCore

#if canImport(Glibc)
import Glibc
#endif

/// Per-network-namespace sysctls the data plane depends on.
public enum KernelSettings {
    static let fastOpenPath = "/proc/sys/net/ipv4/tcp_fastopen"

    /// Makes sure `net.ipv4.tcp_fastopen` has the client (0x1) or server (0x2) bit. Measured on
    /// Linux 6.18: when a listener gets a cookieless SYN with data but the server bit is clear,
    /// the MPTCP connection falls back to plain TCP (MPCapableDataFallback), silently losing
    /// multipath. Returns the old and new values when it changed anything.
    @discardableResult
    public static func enableFastOpen(server: Bool) throws -> (old: Int, new: Int)? {
        guard let current = readFirstLine(fastOpenPath).flatMap({ Int($0.filter { !$0.isWhitespace }) }) else {
            throw SettingsError(description: "cannot read \(fastOpenPath)")
        }
        let wanted = current | (server ? 0x2 : 0x1)
        guard wanted != current else { return nil }
        guard write(fastOpenPath, "\(wanted)\n") else {
            throw SettingsError(description: "cannot write \(fastOpenPath) (\(wanted)): \(String(cString: strerror(errno)))")
        }
        return (current, wanted)
    }

    public struct SettingsError: Error, CustomStringConvertible {
        public var description: String
    }

    static func write(_ path: String, _ value: String) -> Bool {
        guard let f = fopen(path, "w") else { return false }
        let ok = fputs(value, f) >= 0
        return fclose(f) == 0 && ok
    }
}

