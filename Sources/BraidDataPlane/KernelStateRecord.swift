/// What a braid daemon changed in its network namespace, with each value as it was before braid
/// first changed it. Kept in a file (`KernelStateFile`) so that the run after a crash or SIGKILL
/// gives back the value the host had, not the one the killed run left: read from the kernel at
/// the second start, `net.mptcp.path_manager` would say `userspace` and stay so for good.
///
/// The file is a few lines of text, one fact per line, so an operator can read it:
///
///     # braid gateway: kernel settings as they were before braid changed them
///     sysctl net.mptcp.path_manager kernel
///     mptcp_limits 2 0
///     table 100
public struct KernelStateRecord: Equatable, Sendable {
    /// The sysctls braid changes, and so the only ones a state file may name.
    public static let restorableSysctls: Set<String> = [
        "net.ipv4.tcp_fastopen", "net.mptcp.path_manager", "net.mptcp.pm_type",
    ]

    /// A sysctl by its dotted name and its value as /proc/sys shows it, without the newline.
    public struct Sysctl: Equatable, Sendable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The MPTCP path manager's per-connection limits (`ip mptcp limits`).
    public struct MPTCPLimits: Equatable, Sendable {
        public var subflows: UInt32
        public var addAddrAccepted: UInt32

        public init(subflows: UInt32, addAddrAccepted: UInt32) {
            self.subflows = subflows
            self.addAddrAccepted = addAddrAccepted
        }
    }

    /// The role that wrote it, for the operator reading the file.
    public var role: String
    /// Original values, in the order braid changed them (restored in reverse).
    public private(set) var sysctls: [Sysctl] = []
    public var mptcpLimits: MPTCPLimits?
    /// Routing tables braid has installed routes in: a run after a crash removes what is left in
    /// them, and the rules that point at them, even when the configuration names other tables now.
    public private(set) var tables: [UInt32] = []

    public init(role: String) {
        self.role = role
    }

    /// The original value of sysctl `name`, if recorded.
    public func original(_ name: String) -> String? {
        sysctls.first { $0.name == name }?.value
    }

    /// Records `value` as the original of `name` unless one is recorded already: the first
    /// record wins, since later values are braid's own. True when it was new.
    @discardableResult
    public mutating func remember(_ name: String, original value: String) -> Bool {
        guard original(name) == nil else { return false }
        sysctls.append(Sysctl(name: name, value: value))
        return true
    }

    /// Adds routing tables (kept sorted, each once). True when any was new.
    @discardableResult
    public mutating func remember(tables new: some Sequence<UInt32>) -> Bool {
        let merged = Set(tables).union(new).sorted()
        guard merged != tables else { return false }
        tables = merged
        return true
    }

    /// The file's text.
    public var text: String {
        var lines = ["# braid \(role): kernel settings as they were before braid changed them"]
        lines.append("role \(role)")
        for s in sysctls { lines.append("sysctl \(s.name) \(s.value)") }
        if let l = mptcpLimits { lines.append("mptcp_limits \(l.subflows) \(l.addAddrAccepted)") }
        for t in tables { lines.append("table \(t)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses a file's text; an error names the line and what is wrong with it.
    public init(parsing text: String) throws {
        var role: String?
        var record = KernelStateRecord(role: "")
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: " \t")
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            func bad(_ why: String) -> KernelStateError { KernelStateError(line: i + 1, "\(why) (\(line))") }
            switch words[0] {
            case "role":
                guard words.count == 2 else { throw bad("role takes one word") }
                role = words[1]
            case "sysctl":
                // A value may hold spaces (tcp_rmem's three numbers); the name may not.
                guard words.count >= 3, !words[1].contains("/"), !words[1].hasPrefix(".") else {
                    throw bad("sysctl takes a dotted name and a value")
                }
                // Only what braid itself changes: the file is written back to /proc/sys at stop.
                guard Self.restorableSysctls.contains(words[1]) else { throw bad("not a setting braid changes") }
                let value = line.dropFirst("sysctl".count).trimmingCharacters(in: " \t")
                    .dropFirst(words[1].count).trimmingCharacters(in: " \t")
                guard record.remember(words[1], original: String(value)) else { throw bad("sysctl recorded twice") }
            case "mptcp_limits":
                guard words.count == 3, let s = UInt32(words[1]), let a = UInt32(words[2]) else {
                    throw bad("mptcp_limits takes two numbers, subflows and add_addr_accepted")
                }
                record.mptcpLimits = MPTCPLimits(subflows: s, addAddrAccepted: a)
            case "table":
                guard words.count == 2, let t = UInt32(words[1]), t != 0, !(253...255).contains(t) else {
                    throw bad("table takes a number, not 0 nor one of the kernel's tables 253-255")
                }
                record.remember(tables: [t])
            default:
                throw bad("unknown entry '\(words[0])'")
            }
        }
        guard let role else { throw KernelStateError(line: 0, "no role line") }
        record.role = role
        self = record
    }
}

/// A state file that cannot be read or written, with the line at fault (0: the file as a whole).
public struct KernelStateError: Error, CustomStringConvertible {
    public var line: Int
    public var message: String

    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var s = self[...]
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return Substring(s)
    }
}
