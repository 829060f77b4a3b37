import BraidCore
import CBraidLinux

#if canImport(Glibc)
import Glibc
#endif

/// A set of Linux capabilities (capabilities(7)), as the bit mask /proc/PID/status shows.
public struct Capabilities: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Binding a port below 1024.
    public static let netBindService = Capabilities(rawValue: 1 << 10)
    /// Netlink (routes, rules, nftables, the MPTCP path manager), IP_TRANSPARENT, and net sysctls
    /// for a process that is not uid 0.
    public static let netAdmin = Capabilities(rawValue: 1 << 12)
    /// Raw sockets (ICMP echo probes) and SO_BINDTODEVICE.
    public static let netRaw = Capabilities(rawValue: 1 << 13)
    /// Raising RLIMIT_NOFILE's hard limit.
    public static let sysResource = Capabilities(rawValue: 1 << 24)

    /// Names of the numbers up to CAP_CHECKPOINT_RESTORE (40), in capabilities(7)'s spelling.
    static let names = [
        "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
        "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
        "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
        "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
        "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
        "checkpoint_restore",
    ]

    /// "cap_net_admin,cap_net_raw", or "none"; numbers without a name as "cap_N".
    public var description: String {
        var parts: [String] = []
        for bit in 0..<64 where rawValue >> UInt64(bit) & 1 == 1 {
            parts.append("cap_" + (bit < Self.names.count ? Self.names[bit] : "\(bit)"))
        }
        return parts.isEmpty ? "none" : parts.joined(separator: ",")
    }

    /// The calling thread's permitted, effective and bounding sets.
    public static func current() throws -> (permitted: Capabilities, effective: Capabilities, bounding: Capabilities) {
        var permitted: UInt64 = 0
        var effective: UInt64 = 0
        var bounding: UInt64 = 0
        try syscall("capget") { braid_capabilities(&permitted, &effective, &bounding) }
        return (Capabilities(rawValue: permitted), Capabilities(rawValue: effective), Capabilities(rawValue: bounding))
    }

    /// Gives up, on every thread of the process, every capability outside `keep`: a daemon that
    /// has bound its sockets and installed its kernel state should not hold what an attacker who
    /// took over a relay thread could use (CAP_SYS_ADMIN, CAP_DAC_OVERRIDE for a root daemon).
    /// Permitted and effective keep what they held of `keep`, inheritable and ambient are
    /// emptied, and, where the process may (CAP_SETPCAP), the bounding set shrinks to `keep` so
    /// nothing can come back through execve. Throws naming the threads that still hold more.
    @discardableResult
    public static func keepOnly(_ keep: Capabilities) throws -> (
        permitted: Capabilities, effective: Capabilities, bounding: Capabilities
    ) {
        var unconverged: Int32 = 0
        try syscall("capset(keep \(keep))") { braid_keep_capabilities(keep.rawValue, &unconverged) }
        guard unconverged == 0 else {
            throw SystemError("capset(keep \(keep)): \(unconverged) thread(s) still hold more", errno: EAGAIN)
        }
        return try current()
    }
}
