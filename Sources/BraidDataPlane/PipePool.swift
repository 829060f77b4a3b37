import BraidCore
import CBraidLinux

#if canImport(Glibc)
import Glibc
#endif

/// A kernel pipe used as the middle of a zero-copy transfer: splice(socket → pipe) then
/// splice(pipe → socket) moves page references, never bytes through user space.
struct Pipe {
    let read: Int32
    let write: Int32
    let capacity: Int
}

/// Pipes for the relays of one reactor. A relay takes a pipe only while bytes are in flight and
/// gives it back once it is empty, so idle sessions hold no pipe (two descriptors and a kernel
/// buffer each) and a gateway with thousands of idle sessions needs only a handful of pipes.
final class PipePool {
    /// 256 KiB: large enough that one splice call moves a whole receive burst at multi-Gbit/s
    /// rates (the 64 KiB default costs four times the calls), small enough to keep the bytes a
    /// busy session holds in the kernel bounded.
    static let pipeSize: Int32 = 256 * 1024
    /// What a pipe from this pool holds (the kernel may round the size up; never down).
    var capacity: Int { Int(Self.pipeSize) }
    /// Empty pipes kept for reuse; more are closed when returned.
    static let keep = 64
    /// How often the reactor trims the pool (`trim`): a pipe idle for a whole period is closed.
    static let trimNanos: UInt64 = 10_000_000_000

    /// Oldest first: `take` reuses the newest, so the front holds the ones idle longest.
    private var free: [Pipe] = []
    /// The fewest pipes `free` held since the last trim: that many were never needed meanwhile.
    private var lowWater = 0
    private(set) var created = 0

    func take() throws -> Pipe {
        if let p = free.popLast() {
            lowWater = min(lowWater, free.count)
            return p
        }
        var fds: [Int32] = [-1, -1]
        var capacity: Int32 = 0
        try syscall("pipe2") { braid_pipe(&fds, Self.pipeSize, &capacity) }
        created += 1
        return Pipe(read: fds[0], write: fds[1], capacity: Int(capacity))
    }

    /// Returns an empty pipe. A pipe that may still hold bytes must be `discard`ed instead.
    func give(_ pipe: Pipe) {
        if free.count < Self.keep {
            free.append(pipe)
        } else {
            discard(pipe)
        }
    }

    /// Closes the pipes that sat in the pool for the whole period since the previous trim, and
    /// returns how many. Without it a burst of sessions left up to `keep` pipes (two descriptors
    /// each) open for the life of the process; with it the pool follows what traffic needs, one
    /// period behind, and a daemon's descriptors return to their baseline after the burst.
    @discardableResult
    func trim() -> Int {
        let idle = min(lowWater, free.count)
        for p in free.prefix(idle) { discard(p) }
        free.removeFirst(idle)
        lowWater = free.count
        return idle
    }

    func discard(_ pipe: Pipe) {
        close(pipe.read)
        close(pipe.write)
    }

    func drain() {
        for p in free { discard(p) }
        free = []
    }
}
