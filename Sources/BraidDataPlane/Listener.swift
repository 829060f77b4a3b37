import BraidCore
import CBraidLinux
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket served by every reactor of a group. Each reactor registers it with
/// EPOLLEXCLUSIVE, so one connection wakes one reactor, and a connection stays on the reactor that
/// accepted it: connections spread over the cores without a hand-off between threads.
public final class Listener {
    public let fd: Int32
    public let endpoint: Endpoint

    init(fd: Int32, endpoint: Endpoint) {
        self.fd = fd
        self.endpoint = endpoint
    }

    /// Starts accepting on every reactor of `group`; `onAccept` runs on the accepting reactor with
    /// a non-blocking, close-on-exec socket it now owns, and the peer's address as accept(2) gave it.
    func attach(to group: ReactorGroup, onAccept: @escaping (Reactor, Int32, PeerAddress) -> Void) {
        for reactor in group.reactors {
            reactor.execute { [fd] in
                let handler = AcceptHandler(reactor: reactor, fd: fd, onAccept: onAccept)
                handler.arm()
            }
        }
    }

    /// Closes the socket. Call after the reactors stopped.
    public func close() {
        _ = Glibc.close(fd)
    }
}

/// Accepts connections on one reactor.
final class AcceptHandler: ReactorHandler {
    private let reactor: Reactor
    private let fd: Int32
    private let onAccept: (Reactor, Int32, PeerAddress) -> Void
    private var lastWarning: UInt64 = 0

    init(reactor: Reactor, fd: Int32, onAccept: @escaping (Reactor, Int32, PeerAddress) -> Void) {
        self.reactor = reactor
        self.fd = fd
        self.onAccept = onAccept
    }

    func arm() {
        do {
            try reactor.register(fd, events: braid_EPOLLIN | braid_EPOLLEXCLUSIVE, handler: self)
        } catch {
            reactor.logger.error("cannot watch listener", metadata: ["fd": "\(fd)", "error": "\(error)"])
        }
    }

    func ready(fd: Int32, events: UInt32) {
        // A bounded batch, so one busy listener cannot starve this reactor's relays.
        for _ in 0..<64 {
            // The peer's address comes with the connection: a getpeername(2) per connection later
            // would ask the kernel for what accept4(2) can hand over in the same call.
            var peer = PeerAddress()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let conn = withUnsafeMutablePointer(to: &peer.storage) { braid_accept(fd, $0, &len) }
            if conn >= 0 {
                onAccept(reactor, conn, peer)
                continue
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK:
                return
            case EINTR, ECONNABORTED, EPROTO, EPERM:
                continue
            default:
                // Out of descriptors or memory: the listen queue keeps the connection. Stop
                // watching for 100 ms rather than spin on a level-triggered event we cannot serve.
                let e = errno
                let now = monotonicNanos()
                if now &- lastWarning > 5_000_000_000 {
                    lastWarning = now
                    reactor.logger.warning(
                        "accept failed; pausing this listener for 100 ms",
                        metadata: ["error": "\(SystemError("accept4", errno: e))"])
                }
                reactor.deregister(fd)
                // Strong capture: the table no longer owns this handler, the timer does.
                reactor.schedule(afterNanos: 100_000_000) { [self] in arm() }
                return
            }
        }
    }
}

/// A connection's peer as accept(2) reported it: a raw socket address, turned into an `Endpoint`
/// (which allocates for IPv6) only when something is logged or compared.
public struct PeerAddress: CustomStringConvertible {
    var storage = sockaddr_storage()

    /// The peer's endpoint; IPv4-mapped IPv6 addresses come back as IPv4. Nil for an address
    /// family that is neither.
    public var endpoint: Endpoint? { Sockets.endpoint(storage) }

    /// The peer's source block, read from the raw address (no address object is built).
    public var sourceBlock: SourceBlock? { SourceBlock(storage) }

    /// The endpoint, or "?" for a family that is neither IPv4 nor IPv6.
    public var description: String { endpoint.map { "\($0)" } ?? "?" }

    init() {}

    /// The peer of a connected socket (getpeername); nil when the peer is gone already.
    init?(peerOf fd: Int32) {
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        }
        guard rc == 0 else { return nil }
    }
}
