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

    private var free: [Pipe] = []
    private(set) var created = 0

    func take() throws -> Pipe {
        if let p = free.popLast() { return p }
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

    func discard(_ pipe: Pipe) {
        close(pipe.read)
        close(pipe.write)
    }

    func drain() {
        for p in free { discard(p) }
        free = []
    }
}
