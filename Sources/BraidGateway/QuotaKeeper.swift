import BraidConfig
import BraidCore
import BraidNetlink
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The mechanism around the uplinks' data caps: reads each capped device's counters through
/// rtnetlink, feeds them to its QuotaMeter with the wall clock, and keeps the counts in
/// `state_dir/quota` across restarts and reboots. Which role an uplink takes at its cap is
/// decided by QuotaMeter.effectiveRole and applied by the supervisor (UplinkSupervisor+Quota).
/// On the control reactor only.
final class QuotaKeeper {
    /// By uplink name; only uplinks with a `quota`.
    private(set) var meters: [String: QuotaMeter] = [:]
    private var stateDir: String
    private let links: RouteTables
    private let boot: String
    private let logger: Logger
    /// The saved records read at start, for uplinks a reload gives a cap later in the same run.
    private var saved: [String: QuotaMeter.Record] = [:]
    private var lastWriteFailed = false

    var file: String { stateDir + "/quota" }

    init(stateDir: String, logger: Logger) throws {
        self.stateDir = stateDir
        self.logger = logger
        links = try RouteTables()
        boot = readFirstLine("/proc/sys/kernel/random/boot_id") ?? "unknown"
        saved = load()
    }

    /// The wall clock, Unix seconds (faked by libfaketime in the tests, like any program's).
    static func now() -> Int64 { Int64(wallClockMillis() / 1000) }

    /// Seconds east of UTC of local time at `now` (TZ, /etc/localtime; OpenWrt's /etc/TZ).
    static func utcOffset(at now: Int64) -> Int64 {
        var t = time_t(now)
        var parts = tm()
        guard localtime_r(&t, &parts) != nil else { return 0 }
        return Int64(parts.tm_gmtoff)
    }

    /// The usage file's records; a file that cannot be read or parsed is set aside (`quota.bad`)
    /// and counting starts from zero, with an error in the log: the gateway runs on either way.
    private func load() -> [String: QuotaMeter.Record] {
        guard let text = readWholeFile(file) else { return [:] }
        do {
            return try QuotaLedger(parsing: text).records
        } catch {
            logger.error(
                "data-cap usage file unreadable; counting starts from zero",
                metadata: ["file": "\(file)", "error": "\(error)", "kept as": "\(file).bad"])
            rename(file, file + ".bad")
            return [:]
        }
    }

    /// Meters for the capped uplinks of `uplinks`: new ones from the saved records, kept ones
    /// with the new cap and calendar, removed ones gone. Returns the uplinks whose state over or
    /// under the cap changed.
    @discardableResult
    func configure(_ uplinks: [UplinkConfig], stateDir: String) -> [String] {
        self.stateDir = stateDir
        let now = Self.now()
        var changed: [String] = []
        var next: [String: QuotaMeter] = [:]
        for u in uplinks {
            guard let q = u.quota else {
                if meters[u.name]?.overCap == true { changed.append(u.name) }
                continue
            }
            let period = QuotaPeriod(length: q.period, resetDay: q.resetDay, utcOffset: Self.utcOffset(at: now))
            if var m = meters[u.name] {
                if m.reconfigure(cap: q.bytes, period: period, now: now) != nil { changed.append(u.name) }
                next[u.name] = m
            } else {
                let m = QuotaMeter(cap: q.bytes, period: period, saved: saved[u.name], now: now)
                // Once: a cap removed and set again by reloads starts a new count.
                saved[u.name] = nil
                if m.overCap { changed.append(u.name) }
                next[u.name] = m
            }
        }
        for (name, m) in meters where next[name] == nil && m.overCap && !changed.contains(name) {
            changed.append(name)
        }
        meters = next
        return changed
    }

    /// Reads every capped device and counts; returns the changes (cap reached, cleared), and
    /// writes the file when a count is due (at most once a minute, or at a new period).
    func tick(devices: [String: String]) -> [(name: String, change: QuotaMeter.Change)] {
        let now = Self.now()
        var changes: [(String, QuotaMeter.Change)] = []
        for name in meters.keys.sorted() {
            guard var m = meters[name], let device = devices[name] else { continue }
            // The calendar follows local time as it is now (a daylight-saving change moves midnight).
            m.period.utcOffset = Self.utcOffset(at: now)
            let before = m.periodEnd
            if let change = m.observe(reading(device), now: now) { changes.append((name, change)) }
            if m.periodEnd != before {
                logger.notice(
                    "data-cap period began", metadata: ["uplink": "\(name)", "ends": "\(m.periodEnd)"])
            }
            meters[name] = m
        }
        if meters.values.contains(where: { $0.shouldSave(now: now) }) { save(now: now) }
        return changes
    }

    /// The device's counter now; nil when it is missing or unreadable.
    private func reading(_ device: String) -> QuotaMeter.Counter? {
        guard let ifindex = RouteTables.interfaceIndex(device) else { return nil }
        do {
            guard let bytes = try links.linkBytes(ifindex: ifindex) else { return nil }
            return QuotaMeter.Counter(ifindex: ifindex, boot: boot, bytes: bytes.received &+ bytes.sent)
        } catch {
            logger.warning("cannot read device counters", metadata: ["device": "\(device)", "error": "\(error)"])
            return nil
        }
    }

    /// Writes every meter's record (a temporary file, fsync, renamed over the old one, so a power
    /// cut leaves the old counts or the new, never half of them). At a clean stop and when due.
    func save(now: Int64 = QuotaKeeper.now()) {
        guard !meters.isEmpty else { return }
        let ledger = QuotaLedger(records: meters.mapValues(\.record))
        do {
            try makeDirectories(stateDir)
            try writeAtomically(file, ledger.text)
            for name in meters.keys { meters[name]?.saved(now: now) }
            if lastWriteFailed { logger.notice("data-cap usage written again", metadata: ["file": "\(file)"]) }
            lastWriteFailed = false
        } catch {
            // Logged once per run of failures: a read-only flash must not fill the log every second.
            if !lastWriteFailed {
                logger.error(
                    "cannot write data-cap usage; counts since the last write are lost at a reboot",
                    metadata: ["file": "\(file)", "error": "\(error)"])
            }
            lastWriteFailed = true
            // Tried again in a minute, not at every tick.
            for name in meters.keys { meters[name]?.saved(now: now) }
        }
    }
}

/// `mkdir -p`, 0755: the usage file is not secret.
private func makeDirectories(_ path: String) throws {
    var prefix = ""
    for part in path.split(separator: "/") {
        prefix += "/" + part
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw SystemError("mkdir(\(prefix))", errno: errno) }
    }
}

/// A new file beside `path`, written and synced, renamed over it, and the directory synced so
/// the rename itself survives a power cut.
private func writeAtomically(_ path: String, _ text: String) throws {
    let temporary = path + ".new"
    unlink(temporary)
    let fd = try syscall("open(\(temporary))") {
        open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
    }
    let bytes = Array(text.utf8)
    let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    let synced = fsync(fd)
    let e = errno
    close(fd)
    guard written == bytes.count, synced == 0 else {
        unlink(temporary)
        throw SystemError("write \(temporary)", errno: e == 0 ? EIO : e)
    }
    try syscall("rename(\(temporary), \(path))") { rename(temporary, path) }
    let directory = String(
        path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
    let dfd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
        fsync(dfd)
        close(dfd)
    }
}

/// A small file's text; nil when it is missing or unreadable (over 1 MiB counts as unreadable).
private func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buffer[0..<n]
        // Not a file this daemon wrote: parsing it fails, and it is set aside.
        if bytes.count > 1 << 20 { return "oversized" }
    }
    return String(decoding: bytes, as: UTF8.self)
}
