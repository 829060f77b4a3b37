import BraidCore

#if canImport(Glibc)
import Glibc
#endif

/// Reads and writes sysctls by dotted name (`net.mptcp.path_manager`). The daemons use
/// `ProcSysctls`; tests use a dictionary.
public protocol SysctlAccess: AnyObject {
    /// The value without its newline; throws naming the sysctl when it cannot be read.
    func read(_ name: String) throws -> String
    func write(_ name: String, _ value: String) throws
}

/// Sysctls of the calling thread's network namespace, through /proc/sys.
public final class ProcSysctls: SysctlAccess {
    public init() {}

    static func path(_ name: String) -> String {
        "/proc/sys/" + name.split(separator: ".").joined(separator: "/")
    }

    /// True when this kernel has the sysctl.
    public func exists(_ name: String) -> Bool {
        access(Self.path(name), F_OK) == 0
    }

    public func read(_ name: String) throws -> String {
        guard let line = readFirstLine(Self.path(name)) else {
            throw SystemError("read sysctl \(name) (\(Self.path(name)))", errno: errno == 0 ? ENOENT : errno)
        }
        return line
    }

    public func write(_ name: String, _ value: String) throws {
        let path = Self.path(name)
        let fd = try syscall("open(\(path))") { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        let bytes = Array((value + "\n").utf8)
        let n = try syscall("write sysctl \(name) = \(value)") { Glibc.write(fd, bytes, bytes.count) }
        guard n == bytes.count else { throw SystemError("write sysctl \(name) = \(value): short write", errno: EIO) }
    }
}

/// The crash-proof memory of one daemon's kernel changes: every setting braid changes goes
/// through here, which writes the value it had before to the state file first, so the file is
/// on disk before the kernel differs from it. A start that finds the file (the last run was
/// killed or crashed) takes the originals from it instead of from the kernel, and a clean stop
/// (`restore`) writes them back and removes the file.
///
/// The file lives next to the role's status socket (`/run/braid` by default: a tmpfs, so it
/// goes with a reboot, as the kernel state does) and is named for the role and the network
/// namespace (its inode), so two daemons sharing one /run in different namespaces (the lab)
/// never read each other's.
public final class KernelStateFile {
    public let path: String
    public private(set) var record: KernelStateRecord
    /// True when the file was there at start: the previous run did not stop cleanly.
    public let recovered: Bool
    private let sysctls: SysctlAccess

    /// Reads the file if present; else starts an empty record (written at the first change).
    /// A file that cannot be parsed stops the start: guessing would hand the host wrong values.
    public init(path: String, role: String, sysctls: SysctlAccess = ProcSysctls()) throws {
        self.path = path
        self.sysctls = sysctls
        let dir = Self.directory(of: path)
        if !dir.isEmpty, let problem = privateDirectoryProblem(dir) {
            throw KernelStateError(line: 0, "state file directory \(dir): \(problem)")
        }
        if let text = try Self.readFile(path) {
            do {
                record = try KernelStateRecord(parsing: text)
            } catch {
                throw KernelStateError(
                    line: 0, "state file \(path): \(error); remove it once the settings it lists are checked")
            }
            recovered = true
        } else {
            record = KernelStateRecord(role: role)
            recovered = false
        }
    }

    /// `directory/role.NETNS.state`, NETNS being the inode of this thread's network namespace.
    public static func path(directory: String, role: String) -> String {
        var st = stat()
        let netns = stat("/proc/self/ns/net", &st) == 0 ? "\(st.st_ino)" : "0"
        return (directory.isEmpty ? "." : directory) + "/\(role).\(netns).state"
    }

    /// The directory of `file` ("" for a bare name).
    public static func directory(of file: String) -> String {
        String(file.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
    }

    /// Sets sysctl `name` to `wanted(current value)`. Before the first change the current value
    /// is recorded (and written to the file); an original already recorded (a killed run's)
    /// stays. Returns the values before and after when it changed anything.
    @discardableResult
    public func update(_ name: String, to wanted: (String) throws -> String) throws -> (old: String, new: String)? {
        let current = try sysctls.read(name)
        let value = try wanted(current)
        guard value != current else { return nil }
        if record.remember(name, original: current) { try save() }
        try sysctls.write(name, value)
        return (current, value)
    }

    /// Sets sysctl `name` to `value` (see `update`).
    @discardableResult
    public func set(_ name: String, to value: String) throws -> (old: String, new: String)? {
        try update(name) { _ in value }
    }

    /// Records the MPTCP limits before braid changes them (`current`), unless a killed run did;
    /// returns the original.
    @discardableResult
    public func remember(limits current: KernelStateRecord.MPTCPLimits) throws -> KernelStateRecord.MPTCPLimits {
        if let original = record.mptcpLimits { return original }
        record.mptcpLimits = current
        try save()
        return current
    }

    /// Records routing tables braid is about to install routes in.
    public func remember(tables: some Sequence<UInt32>) throws {
        if record.remember(tables: tables) { try save() }
    }

    /// Writes every recorded sysctl back, last changed first, and removes the file when all went
    /// back (else it stays for the next start). MPTCP limits go through netlink: the caller sets
    /// them from `record.mptcpLimits` first. Returns what failed.
    @discardableResult
    public func restore(alsoFailed earlier: [Error] = []) -> [Error] {
        var failed = earlier
        for s in record.sysctls.reversed() {
            do {
                if try sysctls.read(s.name) != s.value { try sysctls.write(s.name, s.value) }
            } catch {
                failed.append(error)
            }
        }
        if failed.isEmpty, unlink(path) != 0, errno != ENOENT {
            failed.append(SystemError("unlink(\(path))", errno: errno))
        }
        return failed
    }

    /// Writes the record: a new file renamed over the old, so a crash mid-write leaves either.
    private func save() throws {
        let dir = Self.directory(of: path)
        if !dir.isEmpty { _ = mkdir(dir, 0o755) }
        let temporary = path + ".new"
        // A fresh file, never one found there (nor a link's target).
        unlink(temporary)
        let fd = try syscall("open(\(temporary))") {
            open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        let bytes = Array(record.text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0 else {
            unlink(temporary)
            throw SystemError("write \(temporary)", errno: errno == 0 ? EIO : errno)
        }
        try syscall("rename(\(temporary), \(path))") { rename(temporary, path) }
    }

    private static func readFile(_ path: String) throws -> String? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0, let f = fdopen(fd, "r") else {
            if errno == ENOENT { return nil }
            throw SystemError("open state file \(path)", errno: errno)
        }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n == 0 { break }
            bytes += buffer[0..<n]
            guard bytes.count < 1 << 20 else { throw KernelStateError(line: 0, "state file \(path) is over 1 MiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
