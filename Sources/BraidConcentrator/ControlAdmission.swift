import BraidCore
import BraidDataPlane
import BraidHTTP
import BraidTLS
import NIOCore

/// Why a connection to the control port ended before its TLS handshake finished, as the refusal
/// summary names it.
enum ControlRefusalReason: Hashable, Sendable, CustomStringConvertible {
    /// The TLS handshake failed or timed out (the TLS handler's reason).
    case tls(TLSError.Reason)
    /// Closed at accept: `max_control_handshakes` handshakes were in flight.
    case maxHandshakes
    /// Closed at accept: as many handshakes were in flight as finish in half the handshake timeout
    /// at the rate they have been finishing (`HandshakePace`), fewer than `max_control_handshakes`.
    case busy
    /// Closed at accept: its source block had `max_control_handshakes_per_source` in flight.
    case maxHandshakesPerSource
    /// In flight when every slot was taken, from a source over its fair share: closed for a
    /// newcomer from a source well under its own.
    case evicted

    var description: String {
        switch self {
        // The TLS handler's own words ("expired certificate"), as the gateway logs them.
        case .tls(let reason): reason.rawValue
        case .maxHandshakes: "max_control_handshakes"
        case .busy: "busy"
        case .maxHandshakesPerSource: "max_control_handshakes_per_source"
        case .evicted: "evicted"
        }
    }
}

/// The control port's admission as policy, without I/O or clock: who holds the handshake slots,
/// how many may be in flight now, and what a newcomer gets.
///
/// Two things keep a reconnect storm (every gateway of a fleet at once after a restart) converging
/// while the server is slower than the arrivals:
///
/// - A handshake in flight keeps its slot until it finishes or times out. A newcomer over the limit
///   is refused at accept (a reset, before any TLS work) and comes back with its backoff; it takes a
///   slot from a handshake in flight only when that one's source holds more than its fair share and
///   its own far less (`PendingSlots.Eviction.overFairShare`), so one source (or one /24, or one
///   /48) holding stalled handshakes still cannot lock the others out.
/// - The limit follows the rate handshakes finish at (`HandshakePace`): no more in flight than
///   finish in half the handshake timeout, so those admitted finish before it instead of all of
///   them sharing one slow thread until every one times out.
struct ControlAdmissionPolicy<Holder> {
    /// `max_control_handshakes`.
    let maxTotal: Int
    /// `max_control_handshakes_per_source`.
    let maxPerSource: Int
    private(set) var slots = PendingSlots<Holder>()
    private(set) var pace: HandshakePace

    enum Decision {
        /// The slot is `ticket`; `evicted` held a slot that was taken for it: close it.
        case admitted(PendingSlots<Holder>.Ticket, evicted: Holder?)
        case refused(ControlRefusalReason)
    }

    init(maxTotal: Int, maxPerSource: Int, handshakeTimeoutMillis: UInt64) {
        self.maxTotal = maxTotal
        self.maxPerSource = maxPerSource
        pace = HandshakePace(ceiling: maxTotal, targetMillis: handshakeTimeoutMillis / 2)
    }

    /// The most handshakes in flight now.
    func limit(nowMillis: UInt64) -> Int { pace.limit(nowMillis: nowMillis) }

    /// A slot for `holder`'s handshake from `source`, or why not.
    mutating func admit(_ source: SourceBlock, holder: Holder, nowMillis: UInt64) -> Decision {
        let limit = pace.limit(nowMillis: nowMillis)
        switch slots.admit(
            source, holder: holder, maxTotal: limit, maxPerSource: maxPerSource, eviction: .overFairShare)
        {
        case .admitted(let ticket, let evicted): return .admitted(ticket, evicted: evicted)
        case .overSource: return .refused(.maxHandshakesPerSource)
        case .overTotal: return .refused(limit < maxTotal ? .busy : .maxHandshakes)
        }
    }

    /// The handshake of `ticket` finished: its slot goes back and it counts toward the pace.
    mutating func finished(_ ticket: PendingSlots<Holder>.Ticket, nowMillis: UInt64) {
        pace.finished(nowMillis: nowMillis)
        slots.release(ticket)
    }

    /// The handshake of `ticket` ended without finishing (refused, closed, evicted): its slot goes back.
    mutating func ended(_ ticket: PendingSlots<Holder>.Ticket) {
        slots.release(ticket)
    }
}

/// The control port's limits on TLS handshakes in flight, and the count of what it turned away.
/// A handshake costs a descriptor and an OpenSSL session until it finishes or times out, and
/// anyone can start one: without a limit, stalled handshakes take every descriptor. The policy is
/// `ControlAdmissionPolicy`; this is its lock, clock and tally.
final class ControlAdmission: @unchecked Sendable {
    private let lock = Mutex()
    private var policy: ControlAdmissionPolicy<Channel>
    let refusals = RefusalTally<ControlRefusalReason>()

    init(maxTotal: Int, maxPerSource: Int, handshakeTimeout: TimeAmount) {
        policy = ControlAdmissionPolicy(
            maxTotal: maxTotal, maxPerSource: maxPerSource,
            handshakeTimeoutMillis: UInt64(handshakeTimeout.nanoseconds / 1_000_000))
    }

    private static func nowMillis() -> UInt64 { monotonicNanos() / 1_000_000 }

    /// Takes a handshake slot for `channel` from `source`, closing the handshake it evicts if
    /// any; or counts the refusal and says why.
    func admit(_ source: SourceBlock, channel: Channel) -> Result<PendingSlots<Channel>.Ticket, Refused> {
        let now = Self.nowMillis()
        let decision = lock.withLock { policy.admit(source, holder: channel, nowMillis: now) }
        switch decision {
        case .admitted(let ticket, let evicted):
            if let evicted {
                if let peer = SourceBlock(evicted.remoteAddress) { refusals.record(.evicted, from: peer) }
                evicted.close(promise: nil)
            }
            return .success(ticket)
        case .refused(let reason):
            refusals.record(reason, from: source)
            return .failure(Refused(reason: reason))
        }
    }

    /// The handshake finished: its slot goes back, and it counts toward the pace.
    func finished(_ ticket: PendingSlots<Channel>.Ticket) {
        let now = Self.nowMillis()
        lock.withLock { policy.finished(ticket, nowMillis: now) }
    }

    /// The connection ended before its handshake finished (or its pipeline could not be built).
    func release(_ ticket: PendingSlots<Channel>.Ticket) {
        lock.withLock { policy.ended(ticket) }
    }

    /// Handshakes in flight now.
    func inFlight() -> Int { lock.withLock { policy.slots.total } }

    /// The most handshakes in flight now (`max_control_handshakes`, or fewer at a slow pace).
    func limit() -> Int {
        let now = Self.nowMillis()
        return lock.withLock { policy.limit(nowMillis: now) }
    }

    struct Refused: Error {
        var reason: ControlRefusalReason
    }
}

/// Holds one handshake slot of `ControlAdmission` from accept until the TLS handshake finishes
/// or the connection ends, whichever comes first; gives it back exactly once. Goes after the TLS
/// handler in the pipeline, where its `TLSHandshakeCompleted` arrives.
final class ControlHandshakeSlot: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let admission: ControlAdmission
    private let ticket: PendingSlots<Channel>.Ticket
    private var held = true

    init(admission: ControlAdmission, ticket: PendingSlots<Channel>.Ticket) {
        self.admission = admission
        self.ticket = ticket
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is TLSHandshakeCompleted, held {
            held = false
            admission.finished(ticket)
        }
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
        admission.release(ticket)
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
