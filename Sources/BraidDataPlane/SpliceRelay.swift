import BraidCore
import CBraidLinux

#if canImport(Glibc)
import Glibc
#endif

/// How a relay ended, for logs and counters.
public enum RelayEnd: CustomStringConvertible {
    /// Both directions saw end of input and carried it as a FIN.
    case finished
    /// A side failed (reset, broken pipe, connect failure); the other side got a reset.
    case aborted(String)

    public var description: String {
        switch self {
        case .finished: return "finished"
        case .aborted(let why): return "aborted: \(why)"
        }
    }
}

/// What a preface reader decided about the bytes it has seen so far.
enum PrefaceAction {
    case needMore
    /// The preface is complete; `remainder` is payload that followed it.
    case done(remainder: [UInt8])
    case refuse(String)
}

/// One direction of a relay: pending user-space bytes first (a Convert reply, data that came in
/// with a request), then zero-copy through a pipe taken from the reactor's pool only while bytes
/// are in flight.
struct Flow {
    var pending: [UInt8] = []
    var pendingSent = 0
    var pipe: Pipe?
    var inPipe = 0
    var sourceEnded = false
    var sinkShut = false
    /// splice() is refused by this source (EINVAL): copy through the reactor's scratch buffer.
    var copy = false
    var bytes: UInt64 = 0
    /// The subscriber's rate for this direction, if its class has one.
    var limit: TokenBucket?
    /// Reading stopped for lack of tokens; a timer resumes it.
    var waitingForTokens = false
    /// Where this direction's bytes are also counted (the subscriber's or the forwarder's meter).
    var meter: ByteMeter?
    /// Which of the meter's two totals: towards `b` is up, towards `a` is down.
    var towardsA = false
    /// The last run stopped because the sink would block (bytes wait in user space or the pipe):
    /// only the sink's writability can move this direction on, not news from its source.
    var waitsForSink = false
    /// The source's splice_read copies into pages it allocates for the whole length asked, before
    /// it knows whether a byte is there (MPTCP sockets: the kernel's generic copy_splice_read, 64
    /// pages for a 256 KiB pipe, nearly all freed again). Such a source is asked for `readHint`.
    var sizesReads = false
    var readHint = Flow.firstRead

    /// A sized source's first read: one page, what a short exchange's request or answer fits in.
    static let firstRead = 4096

    /// The length to ask a sized source for next, after it gave `moved` of the `asked` bytes: four
    /// times more after a full read (a bulk transfer is back at the pipe's size within a few
    /// calls), else twice what came, at least a page; never more than `limit`.
    static func nextRead(after moved: Int, asked: Int, limit: Int) -> Int {
        let grown = moved >= asked ? asked * 4 : moved * 2
        return min(max(grown, firstRead), limit)
    }

    /// Counts `n` bytes delivered to this direction's sink.
    mutating func delivered(_ n: Int) {
        bytes &+= UInt64(n)
        guard let meter else { return }
        if towardsA { meter.add(down: n) } else { meter.add(up: n) }
    }

    var done: Bool { sinkShut }
}

/// Relays bytes between two connected sockets until both directions end: splice(2) through a
/// pipe, half-close carried as shutdown(SHUT_WR), a reset or error on either side carried to the
/// other as a reset. Side `a` is the accepting side (LAN or concentrator inbound), `b` the side
/// braid dialled; `b` may still be connecting, and its first bytes may be a preface to read in
/// user space first (the gateway's Convert reply).
///
/// Edge-triggered: any event on either socket runs both directions until each would block, so
/// no readiness is ever lost and an idle relay costs no system calls.
final class SpliceRelay: ReactorHandler {
    static let events = braid_EPOLLIN | braid_EPOLLOUT | braid_EPOLLRDHUP | braid_EPOLLET

    private let reactor: Reactor
    let a: Int32
    let b: Int32
    private var toB = Flow()
    private var toA = Flow()
    private var connecting: Bool
    private var preface: ((UnsafeRawBufferPointer) -> PrefaceAction)?
    private var ended = false
    private let counters: SessionCounters
    var onEnd: ((SpliceRelay, RelayEnd) -> Void)?
    /// Set while the half-close watch runs: one direction has ended, the other has not.
    private var halfClosedWatch: (progress: HalfClosedProgress, since: UInt64)?
    /// `halfClosedIdleNanos` and `halfClosedCheckNanos` of this relay (tests shorten them).
    private let halfClosedBounds: (idle: UInt64, check: UInt64)
    /// Whether the last `checkSubflows` found no live subflow.
    private var subflowless = false

    /// How long a half-closed relay may sit with no byte moving the other way, and none of the
    /// ended direction's last bytes acknowledged by its reader, before it is aborted. An MPTCP
    /// connection whose last subflow died while its FIN was on the way never learns that the
    /// peer is gone (the soak found sessions in FIN-WAIT-1 on one side and CLOSE-WAIT on the
    /// other an hour later): without this bound each one holds two descriptors for good. A half-closed exchange still moving bytes is never touched; proxies bound the
    /// same state the same way (a "client-fin" timeout).
    static let halfClosedIdleNanos: UInt64 = 60_000_000_000
    /// How often the watch looks; a dead half-closed relay goes within 75 s of its last byte.
    static let halfClosedCheckNanos: UInt64 = 15_000_000_000

    /// Takes ownership of `a` and `b`. The relay counts itself in `counters` from `start` to its end.
    /// `mptcp` says which sides are MPTCP sockets (their reads are sized, see `Flow.sizesReads`).
    init(
        reactor: Reactor, a: Int32, b: Int32, connecting: Bool, counters: SessionCounters, meter: ByteMeter? = nil,
        mptcp: (a: Bool, b: Bool) = (false, false), toB: [UInt8] = [],
        toA: [UInt8] = [], preface: ((UnsafeRawBufferPointer) -> PrefaceAction)? = nil,
        limitToB: TokenBucket? = nil, limitToA: TokenBucket? = nil,
        halfClosedBounds: (idle: UInt64, check: UInt64) = (
            SpliceRelay.halfClosedIdleNanos, SpliceRelay.halfClosedCheckNanos
        )
    ) {
        self.reactor = reactor
        self.halfClosedBounds = halfClosedBounds
        self.a = a
        self.b = b
        self.connecting = connecting
        self.counters = counters
        self.toB.pending = toB
        self.toA.pending = toA
        self.preface = preface
        self.toB.limit = limitToB
        self.toA.limit = limitToA
        self.toB.meter = meter
        self.toA.meter = meter
        self.toA.towardsA = true
        self.toB.sizesReads = mptcp.a
        self.toA.sizesReads = mptcp.b
    }

    /// False while `b` is still connecting.
    var isConnected: Bool { !connecting }
    var bytesToB: UInt64 { toB.bytes }
    var bytesToA: UInt64 { toA.bytes }

    /// Registers both sockets, taking over any already registered by a handshake handler, and
    /// moves what can move. A `b` still connecting fails after `connectTimeoutNanos`.
    func start(connectTimeoutNanos: UInt64) {
        counters.opened()
        do {
            try reactor.take(a, events: Self.events, handler: self)
            try reactor.take(b, events: Self.events, handler: self)
        } catch {
            abort("\(error)")
            return
        }
        if connecting {
            reactor.schedule(afterNanos: connectTimeoutNanos) { [weak self] in
                guard let self, self.connecting, !self.ended else { return }
                self.abort("connect: timed out")
            }
        }
        pump()
    }

    func ready(fd: Int32, events: UInt32) {
        if connecting {
            guard fd == b else { return }  // `a`'s bytes wait; the first pump after connect reads them
            guard let err = Sockets.pendingConnectError(b) else { return }
            if err != 0 {
                abort("connect: \(String(cString: strerror(err)))")
                return
            }
            connecting = false
            pump()
            return
        }
        // A direction runs on an event of its source unless it is stuck on its sink, and on an
        // event of its sink only when it is stuck there; errors run both. The event's mask is not
        // trusted to say which: an MPTCP socket can wake its reader before its poll reports the
        // data, and a relay that believed the mask is a relay that can stall.
        let failed = events & (braid_EPOLLERR | braid_EPOLLHUP) != 0
        func runs(_ flow: Flow, source: Int32) -> Bool {
            failed || (fd == source ? !flow.waitsForSink : flow.waitsForSink)
        }
        pump(toB: runs(toB, source: a), toA: runs(toA, source: b))
    }

    /// Runs the directions asked for (both by default: at start, after connect, after a wait for
    /// tokens), then finishes or watches the relay as its directions' ends say.
    private func pump(toB runToB: Bool = true, toA runToA: Bool = true) {
        guard !ended, !connecting else { return }
        if runToB, !toB.done, let failure = move(&toB, from: a, to: b, prefaced: false) {
            abort(failure)
            return
        }
        if runToA, !toA.done, let failure = move(&toA, from: b, to: a, prefaced: true) {
            abort(failure)
            return
        }
        if toB.done && toA.done {
            finish()
        } else if (toB.done || toA.done) && halfClosedWatch == nil {
            watchHalfClosed()
        }
    }

    /// What shows a half-closed relay is alive.
    private struct HalfClosedProgress: Equatable {
        /// Bytes moved so far in the direction that is still open.
        var openDirection: UInt64
        /// Bytes of the ended direction its socket still holds unacknowledged. The relay writes a
        /// direction's end as soon as the socket takes it, and a slow reader drains megabytes
        /// after that: a download to a rate-limited client sat in the gateway's LAN socket while
        /// the watch, counting only the open direction, reset the connection and cut the file.
        var endedUnacknowledged: Int
    }

    private var halfClosedProgress: HalfClosedProgress {
        HalfClosedProgress(
            openDirection: toB.done ? toA.bytes : toB.bytes,
            endedUnacknowledged: Sockets.unacknowledgedBytes(toB.done ? b : a) ?? 0)
    }

    /// Aborts the relay once nothing has moved for `halfClosedIdleNanos`: no byte the open way,
    /// and no byte of the ended direction acknowledged by its reader.
    private func watchHalfClosed() {
        halfClosedWatch = (halfClosedProgress, monotonicNanos())
        reactor.schedule(afterNanos: halfClosedBounds.check) { [weak self] in self?.checkHalfClosed() }
    }

    private func checkHalfClosed() {
        guard !ended, let watch = halfClosedWatch else { return }
        let now = monotonicNanos()
        let progress = halfClosedProgress
        if progress != watch.progress {
            halfClosedWatch = (progress, now)
        } else if now &- watch.since >= halfClosedBounds.idle {
            abort("half-closed and idle for \((now &- watch.since) / 1_000_000_000) s")
            return
        }
        reactor.schedule(afterNanos: halfClosedBounds.check) { [weak self] in self?.checkHalfClosed() }
    }

    /// `a` is an MPTCP connection from a gateway: keepalive closes the subflows of a gateway that
    /// vanished, but the connection stays, waiting for a join that will not come. Aborts the relay
    /// when this check and the one before found no live subflow (`SubflowSweep` calls it every
    /// `keepalive`). Returns whether the relay is still to be watched.
    func checkSubflows(period: UInt64) -> Bool {
        guard !ended else { return false }
        let none = braid_mptcp_live_subflows(a) == 0
        if none && subflowless {
            abort("no subflow for \(period / 1_000_000_000) s: the gateway is gone")
            return false
        }
        subflowless = none
        return true
    }

    /// Moves bytes one way until something would block. Returns why the relay must be aborted, or
    /// nil. `prefaced`: this direction (b → a) starts with the preface, while there is one.
    private func move(_ flow: inout Flow, from src: Int32, to dst: Int32, prefaced: Bool) -> String? {
        flow.waitsForSink = false
        while true {
            // 1. User-space bytes owed to `dst`.
            while flow.pendingSent < flow.pending.count {
                let sent = flow.pendingSent
                let r = flow.pending.withUnsafeBytes { p in
                    transfer { send(dst, p.baseAddress! + sent, p.count - sent, Int32(MSG_NOSIGNAL)) }
                }
                switch r {
                case .moved(let n):
                    flow.pendingSent += n
                    flow.delivered(n)
                case .wouldBlock, .end:
                    flow.waitsForSink = true
                    return nil
                case .failed(let e): return "send: \(String(cString: strerror(e)))"
                }
            }
            if !flow.pending.isEmpty {
                flow.pending = []
                flow.pendingSent = 0
            }
            // 2. Bytes parked in the pipe.
            while flow.inPipe > 0, let pipe = flow.pipe {
                switch transfer({ braid_splice(pipe.read, dst, UInt(flow.inPipe), 0) }) {
                case .moved(let n):
                    flow.inPipe -= n
                    flow.delivered(n)
                case .wouldBlock:
                    flow.waitsForSink = true
                    return nil
                // 0 from a pipe that holds bytes: nothing would ever wake this flow again.
                case .end: return "splice to socket: moved nothing with \(flow.inPipe) bytes in the pipe"
                case .failed(let e): return "splice to socket: \(String(cString: strerror(e)))"
                }
            }
            // 3. End of input, carried as a FIN once everything before it is out.
            if flow.sourceEnded {
                releasePipe(&flow)
                if shutdown(dst, Int32(SHUT_WR)) < 0 && errno != ENOTCONN {
                    return "shutdown: \(String(cString: strerror(errno)))"
                }
                flow.sinkShut = true
                return nil
            }
            // 4. Read more: the preface in user space, else splice, else copy.
            if prefaced, let preface {
                let r = transfer { recv(src, reactor.scratch.baseAddress!, 4096, 0) }
                switch r {
                case .moved(let n):
                    switch preface(UnsafeRawBufferPointer(rebasing: reactor.scratch[0..<n])) {
                    case .needMore: continue
                    case .done(let remainder):
                        self.preface = nil
                        flow.pending = remainder
                        continue
                    case .refuse(let why): return why
                    }
                case .wouldBlock: return nil
                case .end: return "closed before its reply"
                case .failed(let e): return "recv: \(String(cString: strerror(e)))"
                }
            }
            var chunk = flow.copy ? reactor.scratch.count : (flow.pipe?.capacity ?? reactor.pipes.capacity)
            if flow.sizesReads && !flow.copy { chunk = min(chunk, flow.readHint) }
            let allowed = allowance(&flow, chunk, towardsA: prefaced)
            if allowed == 0 {
                releasePipe(&flow)  // empty here: a waiting flow holds no pipe
                return nil
            }
            if flow.copy {
                let r = transfer { recv(src, reactor.scratch.baseAddress!, allowed, 0) }
                flow.limit?.refund(allowed - r.moved)
                switch r {
                case .moved(let n):
                    flow.pending = Array(UnsafeRawBufferPointer(rebasing: reactor.scratch[0..<n]))
                    continue
                case .wouldBlock: return nil
                case .end: flow.sourceEnded = true
                case .failed(let e): return "recv: \(String(cString: strerror(e)))"
                }
                continue
            }
            if flow.pipe == nil {
                do { flow.pipe = try reactor.pipes.take() } catch { return "\(error)" }
            }
            let pipe = flow.pipe!
            let r = transfer { braid_splice(src, pipe.write, UInt(allowed), 0) }
            flow.limit?.refund(allowed - r.moved)
            switch r {
            case .moved(let n):
                flow.inPipe += n
                if flow.sizesReads {
                    flow.readHint = Flow.nextRead(after: n, asked: allowed, limit: pipe.capacity)
                }
            case .end:
                flow.sourceEnded = true
            case .wouldBlock:
                releasePipe(&flow)  // empty here: idle flows hold no pipe
                return nil
            case .failed(EINVAL):
                flow.copy = true  // this socket type cannot splice_read; fall back to copying
                reactor.noteCopyFallback()
            case .failed(let e):
                return "splice from socket: \(String(cString: strerror(e)))"
            }
        }
    }

    /// How many bytes this flow may read now: `chunk`, or what its rate limit grants. With no
    /// tokens left, the flow stops reading (its bytes wait in the kernel, and TCP slows the
    /// sender) and a timer runs the relay again when enough tokens are back.
    /// `towardsA` names the flow, so its timer clears its own flag only (one timer per waiting flow).
    private func allowance(_ flow: inout Flow, _ chunk: Int, towardsA: Bool) -> Int {
        guard let limit = flow.limit else { return chunk }
        let now = monotonicNanos()
        // Read a useful amount or nothing: half the burst, or the whole chunk if smaller.
        let useful = min(chunk, Int(limit.burst / 2))
        let granted = limit.take(atLeast: useful, upTo: chunk, now: now)
        if granted > 0 || flow.waitingForTokens { return granted }
        flow.waitingForTokens = true
        let wait = limit.nanosUntil(useful, now: now)
        reactor.schedule(afterNanos: max(wait, 1_000_000)) { [weak self] in
            guard let self, !self.ended else { return }
            if towardsA { self.toA.waitingForTokens = false } else { self.toB.waitingForTokens = false }
            self.pump()
        }
        return 0
    }

    private func releasePipe(_ flow: inout Flow) {
        guard let pipe = flow.pipe else { return }
        flow.pipe = nil
        if flow.inPipe == 0 {
            reactor.pipes.give(pipe)
        } else {
            reactor.pipes.discard(pipe)
            flow.inPipe = 0
        }
    }

    private func finish() {
        guard !ended else { return }
        ended = true
        releasePipe(&toB)
        releasePipe(&toA)
        reactor.close(a)
        reactor.close(b)
        counters.closed()
        onEnd?(self, .finished)
        onEnd = nil
    }

    /// Ends both sides with a reset: a failure on one side must not look like a clean end on
    /// the other (a truncated download would pass for a complete one).
    func abort(_ why: String) {
        guard !ended else { return }
        ended = true
        releasePipe(&toB)
        releasePipe(&toA)
        reactor.setHandler(a, nil)
        reactor.setHandler(b, nil)
        Sockets.closeWithReset(a)
        Sockets.closeWithReset(b)
        counters.closed()
        onEnd?(self, .aborted(why))
        onEnd = nil
    }
}
