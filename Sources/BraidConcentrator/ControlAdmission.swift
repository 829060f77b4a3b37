import BraidCore
import BraidDataPlane
import BraidTLS
import NIOCore

/// Why a connection to the control port ended before its TLS handshake finished, as the refusal
/// summary names it.
enum ControlRefusalReason: Hashable, Sendable, CustomStringConvertible {
    /// The TLS handshake failed or timed out (the TLS handler's reason).
    case tls(TLSError.Reason)
    /// Closed at accept: `max_control_handshakes` handshakes were in flight.
    case maxHandshakes
    /// Closed at accept: its source block had `max_control_handshakes_per_source` in flight.
    case maxHandshakesPerSource
    /// In flight when every slot was taken, the oldest of the heaviest source: closed for a newcomer.
    case evicted

    var description: String {
        switch self {
        // The TLS handler's own words ("expired certificate"), as the gateway logs them.
        case .tls(let reason): reason.rawValue
        case .maxHandshakes: "max_control_handshakes"
        case .maxHandshakesPerSource: "max_control_handshakes_per_source"
        case .evicted: "evicted"
        }
    }
}

/// The control port's limits on TLS handshakes in flight, and the count of what it turned away.
/// A handshake costs a descriptor and an OpenSSL session until it finishes or times out, and
/// anyone can start one: without a limit, stalled handshakes take every descriptor.
final class ControlAdmission: @unchecked Sendable {
    /// `max_control_handshakes`: in flight at most, from everyone.
    let maxTotal: Int
    /// `max_control_handshakes_per_source`: the same, from one IPv4 address or IPv6 /64.
    let maxPerSource: Int
    /// The same policy as the data port's pending handshakes: when every slot is taken, the oldest
    /// handshake of the heaviest source gives way, so a few sources cannot hold them all.
    let inFlight = PendingHandshakes<Channel>()
    let refusals = RefusalTally<ControlRefusalReason>()

    init(maxTotal: Int, maxPerSource: Int) {
        self.maxTotal = maxTotal
        self.maxPerSource = maxPerSource
    }

    /// Takes a handshake slot for `channel` from `source`, closing the handshake it evicts if
    /// any; or counts the refusal and says why.
    func admit(_ source: SourceBlock, channel: Channel) -> Result<PendingHandshakes<Channel>.Ticket, Refused> {
        let reason: ControlRefusalReason
        switch inFlight.admit(source, holder: channel, maxTotal: maxTotal, maxPerSource: maxPerSource) {
        case .admitted(let ticket, let evicted):
            if let evicted {
                if let peer = SourceBlock(evicted.remoteAddress) { refusals.record(.evicted, from: peer) }
                evicted.close(promise: nil)
            }
            return .success(ticket)
        case .overTotal: reason = .maxHandshakes
        case .overSource: reason = .maxHandshakesPerSource
        }
        refusals.record(reason, from: source)
        return .failure(Refused(reason: reason))
    }

    struct Refused: Error {
        var reason: ControlRefusalReason
    }
}

extension SourceBlock {
    /// The block of a NIO peer address; an IPv4 client of the dual-stack listener (::ffff:a.b.c.d)
    /// counts as its IPv4 address. Nil for an address that is not IP.
    init?(_ address: SocketAddress?) {
        switch address {
        case .v4(let a)?:
            self.init(ipv4: UInt32(bigEndian: a.address.sin_addr.s_addr))
        case .v6(let a)?:
            let bytes = withUnsafeBytes(of: a.address.sin6_addr) { [UInt8]($0) }
            self.init(IPAddress(mappedIPv6Bytes: bytes) ?? .v6(bytes))
        default:
            return nil
        }
    }
}

/// Holds one handshake slot of `ControlAdmission` from accept until the TLS handshake finishes
/// or the connection ends, whichever comes first; gives it back exactly once. Goes after the TLS
/// handler in the pipeline, where its `TLSHandshakeCompleted` arrives.
final class ControlHandshakeSlot: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let admission: ControlAdmission
    private let ticket: PendingHandshakes<Channel>.Ticket
    private var held = true

    init(admission: ControlAdmission, ticket: PendingHandshakes<Channel>.Ticket) {
        self.admission = admission
        self.ticket = ticket
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is TLSHandshakeCompleted { release() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    /// Also when the channel never became active (its registration failed).
    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    private func release() {
        guard held else { return }
        held = false
        admission.inFlight.release(ticket)
    }
}

/// A connection over a handshake limit: closed with a reset as soon as it is active, before any
/// byte is read or a TLS session is made for it. A reset, not a FIN, so the descriptor and the
/// socket go at once, without TIME_WAIT on our side.
final class CloseAtAccept: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func channelActive(context: ChannelHandlerContext) {
        // SO_LINGER with a zero timeout makes close(2) send a reset. On the channel's own loop
        // the option is set before the future returns, so the close comes after it.
        if let socket = context.channel as? SocketOptionProvider {
            _ = socket.setSoLinger(NIOLinger(l_onoff: 1, l_linger: 0))
        }
        context.close(promise: nil)
    }
}
