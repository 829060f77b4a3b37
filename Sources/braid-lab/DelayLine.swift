import ArgumentParser
import BraidCore
import COpenSSL
import Glibc

/// `braid-lab delay`: a TUN device that hands every packet back to the kernel D ms after it was
/// routed into it — a fixed one-way delay for the lab, whose kernel has no sch_netem.
///
/// The kernel routes a packet out of the TUN device; we read it, keep it in a FIFO, and write it
/// back to the same descriptor when it is due, where it re-enters the stack as received on that
/// device and is routed again (lab/lab.sh's policy rules send it on from there).
struct Delay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "TUN delay line: every packet read from device NAME is written back to it D ms later.",
        discussion: """
            Creates the TUN device (IFF_TUN | IFF_NO_PI) and leaves bringing it up and routing to the \
            caller. Prints {"event": "ready", "dev": NAME} on stdout once the device exists. Order is \
            preserved (jitter never reorders); packets beyond --queue-packets are dropped and counted. \
            Exits 0 on SIGTERM or SIGINT, with counters on stderr; the device goes away with the process.
            """
    )

    @Option(help: "TUN device to create.")
    var dev: String

    @Option(help: "One-way delay in milliseconds.")
    var ms: Double

    @Option(help: "Uniform jitter in milliseconds (± this much, never reordering).")
    var jitterMs: Double = 0

    @Option(help: "Packets held at most; more are dropped.")
    var queuePackets = 10000

    func validate() throws {
        guard !dev.isEmpty, dev.utf8.count < 16, !dev.contains("/"), !dev.contains(where: \.isWhitespace) else {
            throw ValidationError("--dev: '\(dev)' is not a valid interface name (1-15 characters, no '/' or spaces)")
        }
        guard ms >= 0, ms.isFinite, ms <= 60_000 else {
            throw ValidationError("--ms: \(ms) must be between 0 and 60000")
        }
        guard jitterMs >= 0, jitterMs.isFinite, jitterMs <= ms else {
            throw ValidationError("--jitter-ms: \(jitterMs) must be between 0 and --ms (\(ms))")
        }
        try validateAtLeast(queuePackets, 1, "--queue-packets")
    }

    func run() throws {
        let signals = try TerminationSignals()
        let tun = try TunDevice(name: dev)
        try tun.setTransmitQueueLength(queuePackets)
        let line = DelayLine(
            tun: tun, delayNanos: UInt64(ms * 1e6), jitterNanos: UInt64(jitterMs * 1e6), capacity: queuePackets)
        JSONObject(dictionaryLiteral: ("event", .string("ready")), ("dev", .string(tun.name))).emit()
        try line.run(until: signals)
        let stats: JSONObject = [
            "event": .string("stopped"), "dev": .string(tun.name), "forwarded": .int(line.forwarded),
            "dropped": .int(line.dropped), "write_errors": .int(line.writeErrors),
        ]
        writeAll(fd: STDERR_FILENO, stats.line + "\n")
    }
}

/// A TUN interface (layer 3, no packet-information header) opened nonblocking.
final class TunDevice {
    let fd: Int32
    let name: String

    private static let TUNSETIFF: UInt = 0x4004_54ca  // _IOW('T', 202, int)
    private static let SIOCSIFTXQLEN: UInt = 0x8943
    private static let IFF_TUN: Int16 = 0x0001
    private static let IFF_NO_PI: Int16 = 0x1000
    private static let ifreqSize = 40
    private static let nameSize = 16

    init(name: String) throws {
        let fd = try syscall("open /dev/net/tun") { open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC) }
        // struct ifreq: the name (16 bytes, NUL-terminated), then a union whose first member for
        // TUNSETIFF is the short ifr_flags.
        var request = [UInt8](repeating: 0, count: Self.ifreqSize)
        request.replaceSubrange(0..<name.utf8.count, with: name.utf8)
        let flags = Self.IFF_TUN | Self.IFF_NO_PI
        request.withUnsafeMutableBytes { $0.storeBytes(of: flags, toByteOffset: 16, as: Int16.self) }
        do {
            _ = try request.withUnsafeMutableBytes { raw in
                try syscall("ioctl TUNSETIFF \(name)") { ioctl(fd, Self.TUNSETIFF, raw.baseAddress!) }
            }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.name = String(decoding: request[0..<Self.nameSize].prefix { $0 != 0 }, as: UTF8.self)
    }

    deinit { close(fd) }

    /// Sets the device's txqueuelen, which for TUN is the size of the kernel ring between the stack
    /// and our read(). The default (500) overflows on a TCP burst (one 64 KB GSO packet from a veth
    /// becomes 44 packets here) and the kernel drops silently (tx_dropped); it should hold as many
    /// packets as the delay line does.
    func setTransmitQueueLength(_ length: Int) throws {
        let control = try syscall("socket(AF_INET, SOCK_DGRAM)") {
            socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        defer { close(control) }
        var request = [UInt8](repeating: 0, count: Self.ifreqSize)
        request.replaceSubrange(0..<name.utf8.count, with: name.utf8)
        request.withUnsafeMutableBytes { $0.storeBytes(of: Int32(clamping: length), toByteOffset: 16, as: Int32.self) }
        _ = try request.withUnsafeMutableBytes { raw in
            try syscall("ioctl SIOCSIFTXQLEN \(name) \(length)") { ioctl(control, Self.SIOCSIFTXQLEN, raw.baseAddress!) }
        }
    }
}

/// The FIFO of delayed packets: packet bytes in one preallocated ring, with a ring of
/// (offset, length, due time) entries beside it. No allocation per packet.
struct PacketQueue {
    private var storage: UnsafeMutableRawBufferPointer
    private var offsets: [Int]
    private var lengths: [Int]
    private var dues: [UInt64]
    private var head = 0
    private(set) var count = 0
    /// Where the next packet's bytes go.
    private var writeOffset = 0

    /// Room for `capacity` packets of up to `averageBytes` on average; a packet that finds no room
    /// (entries or bytes) is refused.
    init(capacity: Int, averageBytes: Int = 2048) {
        storage = .allocate(byteCount: capacity * averageBytes, alignment: 64)
        offsets = Array(repeating: 0, count: capacity)
        lengths = Array(repeating: 0, count: capacity)
        dues = Array(repeating: 0, count: capacity)
    }

    var isEmpty: Bool { count == 0 }
    var headDue: UInt64? { count > 0 ? dues[head] : nil }

    /// Copies a packet in; false if the queue is full.
    mutating func push(_ packet: UnsafeRawBufferPointer, due: UInt64) -> Bool {
        guard count < offsets.count, let offset = place(packet.count) else { return false }
        UnsafeMutableRawBufferPointer(rebasing: storage[offset..<(offset + packet.count)]).copyMemory(from: packet)
        let tail = (head + count) % offsets.count
        offsets[tail] = offset
        lengths[tail] = packet.count
        dues[tail] = due
        count += 1
        writeOffset = offset + packet.count
        return true
    }

    /// The oldest packet's bytes, valid until the next push or pop.
    func peek() -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage[offsets[head]..<(offsets[head] + lengths[head])])
    }

    mutating func pop() {
        head = (head + 1) % offsets.count
        count -= 1
        if count == 0 {
            head = 0
            writeOffset = 0
        }
    }

    /// Contiguous room for `length` bytes after the newest packet, wrapping to the start of the
    /// storage when the end is too short (the gap at the end is skipped, as in any byte ring).
    private func place(_ length: Int) -> Int? {
        if count == 0 { return length <= storage.count ? 0 : nil }
        let oldest = offsets[head]
        if writeOffset > oldest {
            if writeOffset + length <= storage.count { return writeOffset }
            return length <= oldest ? 0 : nil
        }
        return writeOffset + length <= oldest ? writeOffset : nil
    }
}

/// Reads packets from the TUN descriptor, holds each until its due time, writes it back.
final class DelayLine {
    private let tun: TunDevice
    private let delayNanos: UInt64
    private let jitterNanos: UInt64
    private var queue: PacketQueue
    private let buffer = ChunkBuffer(size: 65536)
    private var random: UInt64
    private var lastDue: UInt64 = 0

    private(set) var forwarded = 0
    private(set) var dropped = 0
    private(set) var writeErrors = 0

    /// Packets read per wake-up at most: enough to empty the kernel ring after a burst quickly, few
    /// enough (about a millisecond of reads) that due packets are not held back long behind it.
    private static let readBatch = 1024

    init(tun: TunDevice, delayNanos: UInt64, jitterNanos: UInt64, capacity: Int) {
        self.tun = tun
        self.delayNanos = delayNanos
        self.jitterNanos = jitterNanos
        queue = PacketQueue(capacity: capacity)
        var seed: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &seed) { RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), 8) }
        random = seed | 1
    }

    func run(until signals: TerminationSignals) throws {
        var watched = [
            pollfd(fd: tun.fd, events: Int16(POLLIN), revents: 0),
            pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            var now = monotonicNanos()
            sendDuePackets(now: now)
            // Sleep until the head is due (rounded up to the next millisecond, so never early), or at
            // most a second when nothing is queued.
            var timeoutMs: Int32 = 1000
            if let due = queue.headDue {
                timeoutMs = due > now ? Int32(min(1000, (due - now + 999_999) / 1_000_000)) : 0
            }
            watched[0].revents = 0
            watched[1].revents = 0
            try syscall("poll \(tun.name)") { poll(&watched, 2, timeoutMs) }
            if watched[1].revents != 0 && signals.received() { return }
            if watched[0].revents & Int16(POLLIN) != 0 {
                for _ in 0..<Self.readBatch {
                    guard let length = try sysNonblocking("read \(tun.name)", {
                        read(tun.fd, buffer.bytes.baseAddress, buffer.bytes.count)
                    }) else { break }
                    now = monotonicNanos()
                    if !queue.push(UnsafeRawBufferPointer(buffer.prefix(length)), due: dueTime(arrival: now)) {
                        dropped += 1
                    }
                }
            } else if watched[0].revents != 0 {
                throw LabError("\(tun.name): poll reported \(watched[0].revents) on the TUN descriptor")
            }
        }
    }

    private func sendDuePackets(now: UInt64) {
        while let due = queue.headDue, due <= now {
            let packet = queue.peek()
            // Writing to a TUN descriptor injects the packet (netif_rx) and does not block. It fails
            // for a device that is down or a malformed packet: count it, the packet is lost like on a wire.
            if write(tun.fd, packet.baseAddress, packet.count) == packet.count {
                forwarded += 1
            } else {
                writeErrors += 1
            }
            queue.pop()
        }
    }

    /// Arrival + delay ± jitter, never earlier than the packet before it: jitter must not reorder.
    private func dueTime(arrival: UInt64) -> UInt64 {
        var due = arrival &+ delayNanos
        if jitterNanos > 0 {
            // xorshift64*: a fast, plenty good source for timing noise.
            random ^= random >> 12
            random ^= random << 25
            random ^= random >> 27
            let sample = (random &* 0x2545_F491_4F6C_DD1D) % (2 * jitterNanos + 1)
            due = due &+ sample &- jitterNanos
        }
        due = max(due, lastDue)
        lastDue = due
        return due
    }
}
