import BraidCore
import BraidWire

/// The control protocol: the frame decoder, then one end's session state machine fed the same
/// bytes in chunks while its clock advances.
///
/// Input layout: byte 0 picks the end (bit 0: 0 gateway, 1 concentrator) and the clock step per
/// chunk (bits 1-7, seconds); byte 1 is the chunk size (0: all at once); the rest is the stream.
public enum FuzzControl {
    /// Short lifetimes so that rotation, grace and expiry happen within a few chunks.
    static let concentratorConfiguration = {
        var c = ConcentratorControlSession.Configuration(
            keyLifetimeSeconds: 60, rotateAfterSeconds: 40, previousKeyGraceMillis: 10_000,
            timers: ControlTimers(pingIntervalMillis: 5_000, deadAfterMillis: 15_000, handshakeTimeoutMillis: 10_000),
            serviceClass: .init(name: "fuzz", rateDownBitsPerSecond: 1, rateUpBitsPerSecond: 2, maxSessions: 3))
        c.operatorRules = [.init(name: "fuzz", action: .direct, destinationPorts: [PortRange(443, 443)!])]
        return c
    }()
    static let gatewayConfiguration = GatewayControlSession.Configuration(
        software: "fuzz",
        timers: ControlTimers(pingIntervalMillis: 5_000, deadAfterMillis: 15_000, handshakeTimeoutMillis: 10_000))

    public static func run(_ data: [UInt8]) -> FuzzOutcome {
        guard data.count >= 2 else { return .refused }
        let stream = Array(data[2...])
        let decoded = checkDecoder(stream)
        let isConcentrator = data[0] & 1 == 1
        let stepMillis = UInt64(data[0] >> 1) * 1000
        let chunk = data[1] == 0 ? max(stream.count, 1) : Int(data[1])

        var checker = ActionChecker(isConcentrator: isConcentrator)
        var now: UInt64 = 1_790_000_000_000
        var gateway = GatewayControlSession(configuration: gatewayConfiguration)
        var concentrator = ConcentratorControlSession(configuration: concentratorConfiguration, keys: CountingKeys())
        checker.check(isConcentrator ? concentrator.start(nowMillis: now) : gateway.start(nowMillis: now))
        var offset = 0
        while offset < stream.count {
            let piece = stream[offset..<min(offset + chunk, stream.count)]
            offset += piece.count
            checker.check(
                isConcentrator ? concentrator.receive(piece, nowMillis: now) : gateway.receive(piece, nowMillis: now))
            now += stepMillis
            checker.check(isConcentrator ? concentrator.tick(nowMillis: now) : gateway.tick(nowMillis: now))
            let deadline = isConcentrator ? concentrator.nextTickMillis : gateway.nextTickMillis
            invariant(
                checker.closed == (deadline == nil),
                "closed \(checker.closed) but next tick \(String(describing: deadline))")
        }
        checker.check(isConcentrator ? concentrator.shutdown(nowMillis: now) : gateway.shutdown(nowMillis: now))
        invariant(
            checker.live.isEmpty || !checker.closedByDecision, "keys \(checker.live) left after \(checker.reasons)")

        if case .protocolError? = checker.reasons.first { return .refused }
        return decoded > 0 ? .accepted : .refused
    }

    /// Every frame the decoder returns re-encodes to exactly the bytes it came from: one
    /// encoding per message, so nothing can be smuggled in a field the decoder ignores.
    static func checkDecoder(_ stream: [UInt8]) -> Int {
        var decoder = ControlFrameDecoder()
        decoder.append(stream)
        var offset = 0
        var count = 0
        while let message = try? decoder.next() {
            let frame = (try? message.encode()) ?? []
            invariant(
                Array(stream[offset..<min(offset + frame.count, stream.count)]) == frame,
                "\(message) re-encodes differently")
            offset += frame.count
            count += 1
        }
        invariant(
            decoder.bufferedCount <= stream.count, "decoder holds \(decoder.bufferedCount) of \(stream.count) bytes")
        return count
    }

    /// Sequential key ids from 1, fixed key bytes: repeatable runs.
    struct CountingKeys: SessionKeySource {
        var next: UInt32 = 1
        mutating func nextKey() -> (id: UInt32, key: [UInt8]) {
            defer { next &+= 1 }
            return (next, [UInt8](repeating: UInt8(truncatingIfNeeded: next), count: 32))
        }
    }

    /// Checks what a session asks for against what it asked before.
    struct ActionChecker {
        let isConcentrator: Bool
        var ring = SessionKeyRing()
        var live: Set<UInt32> = []
        var closed = false
        var reasons: [ControlCloseReason] = []

        var closedByDecision: Bool {
            switch reasons.first {
            case .connectionLost?, .peerSilent?, nil: return false
            default: return true
            }
        }

        mutating func check(_ actions: [ControlAction]) {
            for action in actions {
                invariant(!closed, "\(action) after close")
                switch action {
                case .send(let frame):
                    let message = try? ControlMessage.decode(frame: frame)
                    invariant(message != nil, "session sent an unreadable frame \(frame)")
                    if case .sessionGrant(let grant)? = message {
                        invariant(
                            live.contains(grant.keyID), "grant of key \(grant.keyID) that was not installed first")
                    }
                case .installKey(let id, let key, let notAfter):
                    invariant(!live.contains(id), "key \(id) installed twice")
                    live.insert(id)
                    if isConcentrator {
                        invariant(
                            (try? ring.install(id: id, key: key, notAfterMillis: notAfter, owner: "fuzz")) == [],
                            "ring refused or evicted when installing \(id)")
                    }
                    invariant(
                        live.count <= (isConcentrator ? SessionKeyRing.keysPerOwner : 2), "\(live.count) live keys")
                case .retireKey(let id):
                    invariant(live.remove(id) != nil, "retired key \(id) that is not live")
                    ring.retire(id: id)
                case .applyClass:
                    invariant(!isConcentrator, "a concentrator applied a class")
                case .learnAddresses(let list):
                    invariant(!isConcentrator, "a concentrator learned addresses")
                    invariant(list.count <= ControlMessage.maximumAddresses, "\(list.count) addresses learned")
                case .applyUplinkShares(let list):
                    invariant(!isConcentrator, "a concentrator applied uplink shares")
                    invariant(list.count <= ControlMessage.maximumUplinkShares, "\(list.count) uplink shares applied")
                case .applyOperatorRules(let rules):
                    invariant(!isConcentrator, "a concentrator applied operator rules")
                    invariant((try? ControlMessage.check(rules)) != nil, "gateway took rules beyond the bounds")
                case .close(let reason):
                    closed = true
                    reasons.append(reason)
                }
            }
            if !isConcentrator { invariant(live.count <= 1, "gateway holds \(live.count) keys after a step") }
        }
    }
}
