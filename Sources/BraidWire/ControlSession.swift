import BraidCore

/// What a control session asks its owner to do. The sessions own no socket, no clock and no
/// key store: bytes and the time go in, these come out, in the order they must be carried out.
public enum ControlAction: Equatable, Sendable {
    /// Write these bytes (one whole frame) to the control channel.
    case send([UInt8])
    /// Start accepting (concentrator) or using (gateway) this data-connection key until
    /// `notAfterMillis` on the session's clock.
    case installKey(id: UInt32, key: [UInt8], notAfterMillis: UInt64)
    /// Stop accepting (concentrator) or using (gateway) this key.
    case retireKey(id: UInt32)
    /// Gateway: the concentrator (re)stated the subscriber's service class.
    case applyClass(ControlMessage.ClassInfo)
    /// Gateway: the concentrator's addresses, as it announced them (see `ControlMessage.addresses`).
    case learnAddresses([IPAddress])
    /// Gateway: the class's uplink shares, replacing the ones before (see `ControlMessage.uplinkShares`).
    case applyUplinkShares([UplinkShare])
    /// Gateway: the operator's rules for its class replace the last set (see `ControlMessage.operatorRules`).
    case applyOperatorRules([ControlMessage.OperatorRule])
    /// Close the control channel after the sends before this action. The session is over.
    case close(ControlCloseReason)
}

/// Why a control session ended.
public enum ControlCloseReason: Equatable, Sendable, CustomStringConvertible {
    /// The peer said goodbye.
    case goodbye
    /// We were asked to shut down and said goodbye.
    case shutdown
    /// The transport ended (EOF, reset, TLS failure) without a goodbye.
    case connectionLost
    /// Nothing heard from the peer for this long.
    case peerSilent(millis: UInt64)
    /// The peer sent an error message.
    case peerError(ControlErrorCode, String)
    /// The peer broke the protocol; we sent it an error message.
    case protocolError(ControlError)
    /// A step that has a deadline (hello, first grant, rotation) did not happen in time.
    case timeout(String)

    public var description: String {
        switch self {
        case .goodbye: return "peer said goodbye"
        case .shutdown: return "shut down"
        case .connectionLost: return "connection lost"
        case .peerSilent(let ms): return "nothing heard from the peer for \(ms) ms"
        case .peerError(let code, let reason): return "peer sent error: \(code): \(reason)"
        case .protocolError(let e): return "protocol error: \(e)"
        case .timeout(let what): return "timeout: \(what)"
        }
    }

    /// Whether the session ended by decision rather than by trouble on the path. After trouble
    /// the keys stay usable until they expire, so data connections carry on while the control
    /// channel reconnects; after a decision they are retired at once.
    var retiresKeys: Bool {
        switch self {
        case .connectionLost, .peerSilent: return false
        default: return true
        }
    }
}

/// Keepalive and handshake timers shared by both ends, in milliseconds.
public struct ControlTimers: Equatable, Sendable {
    /// A ping goes out this often, whatever else is sent.
    public var pingIntervalMillis: UInt64
    /// The peer is dead after this long without a byte from it.
    public var deadAfterMillis: UInt64
    /// Hello (concentrator) or first grant (gateway) must arrive this soon after `start`.
    public var handshakeTimeoutMillis: UInt64

    public init(
        pingIntervalMillis: UInt64 = 10_000, deadAfterMillis: UInt64 = 30_000, handshakeTimeoutMillis: UInt64 = 10_000
    ) {
        precondition(
            pingIntervalMillis > 0 && deadAfterMillis > pingIntervalMillis, "dead-after must exceed the ping interval")
        self.pingIntervalMillis = pingIntervalMillis
        self.deadAfterMillis = deadAfterMillis
        self.handshakeTimeoutMillis = handshakeTimeoutMillis
    }
}

/// Ping timing and dead-peer detection, the same at both ends.
struct KeepaliveClock: Sendable {
    var lastHeard: UInt64
    var lastPing: UInt64
    var nextNonce: UInt64 = 1
    var outstanding: ControlMessage.Keepalive?
    var roundTripMillis: UInt64?

    init(now: UInt64) {
        lastHeard = now
        lastPing = now
    }

    mutating func heard(_ now: UInt64) {
        lastHeard = max(lastHeard, now)
    }

    mutating func pong(_ k: ControlMessage.Keepalive, now: UInt64) {
        if let o = outstanding, o == k, now >= o.timestampMillis {
            roundTripMillis = now - o.timestampMillis
            outstanding = nil
        }
    }

    /// Dead peer first: a ping to a peer already declared dead is pointless.
    mutating func tick(_ now: UInt64, _ timers: ControlTimers) -> [ControlAction]? {
        let silent = now >= lastHeard ? now - lastHeard : 0
        if silent >= timers.deadAfterMillis {
            return [.close(.peerSilent(millis: silent))]
        }
        guard now >= lastPing, now - lastPing >= timers.pingIntervalMillis else { return nil }
        let ping = ControlMessage.Keepalive(nonce: nextNonce, timestampMillis: now)
        nextNonce &+= 1
        lastPing = now
        outstanding = ping
        return [.send(ControlMessage.frame(.ping(ping)))]
    }

    func nextDeadline(_ timers: ControlTimers) -> UInt64 {
        min(lastPing &+ timers.pingIntervalMillis, lastHeard &+ timers.deadAfterMillis)
    }
}

extension ControlMessage {
    /// Encodes a message the session built itself; those always satisfy the encoder's checks.
    static func frame(_ message: ControlMessage) -> [UInt8] {
        do {
            return try message.encode()
        } catch {
            preconditionFailure("control session built an unencodable \(message.type): \(error)")
        }
    }

    /// An error frame whose reason is made safe to send: control characters become spaces and
    /// the text is cut at a character boundary to fit the one-byte length.
    public static func errorFrame(_ code: ControlErrorCode, _ reason: String) -> [UInt8] {
        var text = ""
        var size = 0
        for scalar in reason.unicodeScalars {
            let clean: Unicode.Scalar = ControlReader.controlCharacter(in: String(scalar)) == nil ? scalar : " "
            let width = String(clean).utf8.count
            guard size + width <= maximumStringSize else { break }
            text.unicodeScalars.append(clean)
            size += width
        }
        return frame(.error(code: code, reason: text))
    }
}

/// The gateway's end of the control channel: says hello, installs each key the concentrator
/// grants (the newest is the one to use), applies the service class, keeps the channel alive.
///
/// Call `start` once the TLS channel is up, `receive` with every read, `tick` at
/// `nextTickMillis` (or sooner), `connectionClosed` on EOF, `shutdown` to leave. Every call
/// takes the time on one clock; nothing is read here.
/// What both ends' sessions share: reading frames off the stream, and ending (lost, left on
/// purpose, or failed with an error sent to the peer). Each end brings its own states, its
/// handling of a message, and what closing means for its keys.
fileprivate protocol ControlSessionCore {
    var decoder: ControlFrameDecoder { get set }
    var keepalive: KeepaliveClock { get set }
    var isIdleOrClosed: Bool { get }
    mutating func handle(_ message: ControlMessage, now: UInt64) -> [ControlAction]
    mutating func close(_ reason: ControlCloseReason) -> [ControlAction]
}

extension ControlSessionCore {
    /// Every whole frame in `bytes` (and what was buffered), handled in order until the session closes.
    fileprivate mutating func receiveFrames<C: Collection>(_ bytes: C, now: UInt64) -> [ControlAction]
    where C.Element == UInt8 {
        guard !isIdleOrClosed else { return [] }
        keepalive.heard(now)
        decoder.append(bytes)
        var actions: [ControlAction] = []
        while !isIdleOrClosed {
            do {
                guard let message = try decoder.next() else { break }
                actions += handle(message, now: now)
            } catch let e as ControlError {
                actions += fail(e)
            } catch {
                actions += fail(ControlError(.internalError, "\(error)"))
            }
        }
        return actions
    }

    /// The transport ended without goodbye.
    fileprivate mutating func lost() -> [ControlAction] {
        guard !isIdleOrClosed else { return [] }
        return close(.connectionLost)
    }

    /// Leave on purpose: goodbye, then close.
    fileprivate mutating func leave() -> [ControlAction] {
        guard !isIdleOrClosed else { return [] }
        return [.send(ControlMessage.frame(.goodbye))] + close(.shutdown)
    }

    /// Tell the peer what went wrong, then close.
    fileprivate mutating func fail(_ error: ControlError) -> [ControlAction] {
        [.send(ControlMessage.errorFrame(error.code, error.reason))] + close(.protocolError(error))
    }
}

public struct GatewayControlSession: Sendable, ControlSessionCore {
    public struct Configuration: Equatable, Sendable {
        /// Sent in hello for the concentrator's log.
        public var software: String
        public var timers: ControlTimers

        public init(software: String, timers: ControlTimers = ControlTimers()) {
            self.software = software
            self.timers = timers
        }
    }

    /// The key in use: the newest granted.
    public struct Key: Equatable, Sendable {
        public var id: UInt32
        public var key: [UInt8]
        /// Local expiry: receipt time plus the granted lifetime.
        public var notAfterMillis: UInt64
    }

    private enum State: Sendable {
        case idle
        case helloSent(at: UInt64)
        case established
        case closed(ControlCloseReason)
    }

    public let configuration: Configuration
    private var state: State = .idle
    fileprivate var decoder = ControlFrameDecoder()
    fileprivate var keepalive = KeepaliveClock(now: 0)
    public private(set) var currentKey: Key?
    public private(set) var serviceClass: ControlMessage.ClassInfo?

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Last measured ping round trip.
    public var roundTripMillis: UInt64? { keepalive.roundTripMillis }

    /// Why the session ended, once it has.
    public var closeReason: ControlCloseReason? {
        if case .closed(let r) = state { return r }
        return nil
    }

    /// True once a first key was granted and until the session closes.
    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    /// The latest time `tick` must be called; nil when idle or closed.
    public var nextTickMillis: UInt64? {
        let timers = configuration.timers
        switch state {
        case .idle, .closed:
            return nil
        case .helloSent(let at):
            return min(at &+ timers.handshakeTimeoutMillis, keepalive.nextDeadline(timers))
        case .established:
            let keepaliveDeadline = keepalive.nextDeadline(timers)
            return currentKey.map { min($0.notAfterMillis, keepaliveDeadline) } ?? keepaliveDeadline
        }
    }

    /// The channel is up: say hello.
    public mutating func start(nowMillis now: UInt64) -> [ControlAction] {
        guard case .idle = state else { return [] }
        state = .helloSent(at: now)
        keepalive = KeepaliveClock(now: now)
        return [
            .send(
                ControlMessage.frame(
                    .hello(.init(protocolVersion: ControlMessage.spokenVersion, software: configuration.software))))
        ]
    }

    /// Bytes read from the channel.
    public mutating func receive<C: Collection>(_ bytes: C, nowMillis now: UInt64) -> [ControlAction]
    where C.Element == UInt8 {
        receiveFrames(bytes, now: now)
    }

    fileprivate mutating func handle(_ message: ControlMessage, now: UInt64) -> [ControlAction] {
        switch message {
        case .sessionGrant(let grant):
            if let current = currentKey, current.id == grant.keyID {
                return fail(ControlError(.invalidValue, "sessionGrant reuses key id \(grant.keyID)"))
            }
            var actions: [ControlAction] = []
            let key = Key(
                id: grant.keyID, key: grant.key, notAfterMillis: now &+ UInt64(grant.lifetimeSeconds) * 1000)
            actions.append(.installKey(id: key.id, key: key.key, notAfterMillis: key.notAfterMillis))
            // The newest key is the one to use; connections already opened with the old one are
            // covered by the concentrator's grace period, not by us keeping it.
            if let old = currentKey { actions.append(.retireKey(id: old.id)) }
            currentKey = key
            state = .established
            return actions
        case .classInfo(let info):
            guard case .established = state else {
                return fail(ControlError(.unexpectedMessage, "classInfo before the first sessionGrant"))
            }
            serviceClass = info
            return [.applyClass(info)]
        case .ping(let k):
            return [.send(ControlMessage.frame(.pong(k)))]
        case .pong(let k):
            keepalive.pong(k, now: now)
            return []
        case .error(let code, let reason):
            return close(.peerError(code, reason))
        case .goodbye:
            return close(.goodbye)
        case .hello:
            return fail(ControlError(.unexpectedMessage, "hello sent to a gateway"))
        case .addresses(let list):
            guard case .established = state else {
                return fail(ControlError(.unexpectedMessage, "addresses before the first sessionGrant"))
            }
            return [.learnAddresses(list)]
        case .uplinkShares(let list):
            guard case .established = state else {
                return fail(ControlError(.unexpectedMessage, "uplinkShares before the first sessionGrant"))
            }
            return [.applyUplinkShares(list)]
        case .operatorRules(let rules):
            guard case .established = state else {
                return fail(ControlError(.unexpectedMessage, "operatorRules before the first sessionGrant"))
            }
            return [.applyOperatorRules(rules)]
        }
    }

    /// Timers: handshake deadline, key expiry, keepalive.
    public mutating func tick(nowMillis now: UInt64) -> [ControlAction] {
        let timers = configuration.timers
        switch state {
        case .idle, .closed:
            return []
        case .helloSent(let at):
            if now >= at, now - at >= timers.handshakeTimeoutMillis {
                return fail(ControlError(.timeout, "no sessionGrant \(now - at) ms after hello"))
            }
        case .established:
            // The concentrator rotates well before expiry; reaching it means rotation failed.
            if let key = currentKey, now >= key.notAfterMillis {
                return fail(ControlError(.timeout, "key id \(key.id) expired without a new sessionGrant"))
            }
        }
        guard let actions = keepalive.tick(now, timers) else { return [] }
        if case .close(let reason) = actions.last { return close(reason) }
        return actions
    }

    /// The transport ended without goodbye. The current key stays with the owner until its expiry
    /// so data connections carry on while the channel reconnects.
    public mutating func connectionClosed(nowMillis _: UInt64) -> [ControlAction] {
        lost()
    }

    /// Leave on purpose: goodbye, retire the key, close.
    public mutating func shutdown(nowMillis _: UInt64) -> [ControlAction] {
        leave()
    }

    fileprivate var isIdleOrClosed: Bool {
        switch state {
        case .idle, .closed: return true
        default: return false
        }
    }


    fileprivate mutating func close(_ reason: ControlCloseReason) -> [ControlAction] {
        var actions: [ControlAction] = []
        if reason.retiresKeys, let key = currentKey {
            actions.append(.retireKey(id: key.id))
            currentKey = nil
        }
        state = .closed(reason)
        return actions + [.close(reason)]
    }
}

/// Where a concentrator session gets fresh keys: a key id no other live key has (never 0) and
/// `ControlMessage.SessionGrant.keySize` secret random bytes. Injected so tests are repeatable
/// and so that ids can be drawn against the shared `SessionKeyRing`.
public protocol SessionKeySource: Sendable {
    mutating func nextKey() -> (id: UInt32, key: [UInt8])
}

/// The concentrator's end of the control channel: waits for hello, grants a key, pushes the
/// service class, rotates the key before it expires while the previous one stays valid for a
/// grace period, and keeps the channel alive. The owner mirrors `installKey`/`retireKey` into
/// its `SessionKeyRing`.
public struct ConcentratorControlSession: Sendable, ControlSessionCore {
    public struct Configuration: Equatable, Sendable {
        /// Lifetime of each granted key.
        public var keyLifetimeSeconds: UInt32
        /// A new key is granted this long after the current one (two thirds of the lifetime by
        /// default, leaving the last third for the grant to arrive and for the grace period).
        public var rotateAfterSeconds: UInt32
        /// How long a replaced key keeps authenticating after the rotation, for connections the
        /// gateway opened before it read the new grant. Never beyond the key's own expiry.
        public var previousKeyGraceMillis: UInt64
        public var timers: ControlTimers
        /// The subscriber's class, pushed after the first grant; nil sends none.
        public var serviceClass: ControlMessage.ClassInfo?
        /// The concentrator's addresses, sent after the first grant to gateways that understand
        /// them; empty sends none.
        public var addresses: [IPAddress] = []
        /// The class's uplink shares, sent after the class to gateways that understand them
        /// (an empty list too: it clears what an earlier class set).
        public var uplinkShares: [UplinkShare] = []
        /// The operator's rules for the subscriber's class, sent after the first grant to gateways
        /// that understand them (an empty set too: it clears what the gateway kept); nil sends none.
        /// The owner passes only a set `ControlMessage.check` accepts.
        public var operatorRules: [ControlMessage.OperatorRule]? = nil

        public init(
            keyLifetimeSeconds: UInt32 = 3600, rotateAfterSeconds: UInt32? = nil,
            previousKeyGraceMillis: UInt64 = 120_000,
            timers: ControlTimers = ControlTimers(), serviceClass: ControlMessage.ClassInfo? = nil
        ) {
            let rotate = rotateAfterSeconds ?? UInt32(UInt64(keyLifetimeSeconds) * 2 / 3)
            precondition(
                keyLifetimeSeconds > 0 && rotate > 0 && rotate < keyLifetimeSeconds,
                "key lifetime \(keyLifetimeSeconds) s must exceed the rotation interval \(rotate) s, both non-zero")
            self.keyLifetimeSeconds = keyLifetimeSeconds
            self.rotateAfterSeconds = rotate
            self.previousKeyGraceMillis = previousKeyGraceMillis
            self.timers = timers
            self.serviceClass = serviceClass
        }
    }

    private struct IssuedKey: Sendable {
        var id: UInt32
        var issuedAt: UInt64
        var notAfter: UInt64
    }

    private enum State: Sendable {
        case idle
        case awaitingHello(since: UInt64)
        case established
        case closed(ControlCloseReason)
    }

    public private(set) var configuration: Configuration
    private var keys: any SessionKeySource
    private var state: State = .idle
    fileprivate var decoder = ControlFrameDecoder()
    fileprivate var keepalive = KeepaliveClock(now: 0)
    private var current: IssuedKey?
    /// The replaced key and when its grace ends.
    private var previous: (id: UInt32, retireAt: UInt64)?
    public private(set) var peerHello: ControlMessage.Hello?

    public init(configuration: Configuration, keys: any SessionKeySource) {
        self.configuration = configuration
        self.keys = keys
    }

    public var roundTripMillis: UInt64? { keepalive.roundTripMillis }

    public var closeReason: ControlCloseReason? {
        if case .closed(let r) = state { return r }
        return nil
    }

    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    /// Key ids currently valid for this session, newest first.
    public var liveKeyIDs: [UInt32] {
        (current.map { [$0.id] } ?? []) + (previous.map { [$0.id] } ?? [])
    }

    /// The latest time `tick` must be called; nil when idle or closed.
    public var nextTickMillis: UInt64? {
        let timers = configuration.timers
        switch state {
        case .idle, .closed:
            return nil
        case .awaitingHello(let since):
            return min(since &+ timers.handshakeTimeoutMillis, keepalive.nextDeadline(timers))
        case .established:
            var deadline = keepalive.nextDeadline(timers)
            if let current { deadline = min(deadline, rotationTime(current)) }
            if let previous { deadline = min(deadline, previous.retireAt) }
            return deadline
        }
    }

    /// The channel is up (TLS done, peer identified): wait for hello.
    public mutating func start(nowMillis now: UInt64) -> [ControlAction] {
        guard case .idle = state else { return [] }
        state = .awaitingHello(since: now)
        keepalive = KeepaliveClock(now: now)
        return []
    }

    public mutating func receive<C: Collection>(_ bytes: C, nowMillis now: UInt64) -> [ControlAction]
    where C.Element == UInt8 {
        receiveFrames(bytes, now: now)
    }

    fileprivate mutating func handle(_ message: ControlMessage, now: UInt64) -> [ControlAction] {
        switch (state, message) {
        case (.awaitingHello, .hello(let hello)):
            // Hello names the highest version the gateway speaks; we answer in ours, 1, which
            // every gateway speaks.
            guard hello.protocolVersion >= ControlMessage.version else {
                return fail(ControlError(.unsupportedVersion, "hello.protocolVersion \(hello.protocolVersion)"))
            }
            peerHello = hello
            state = .established
            var actions = grant(now: now)
            if let info = configuration.serviceClass {
                actions.append(.send(ControlMessage.frame(.classInfo(info))))
            }
            if hello.protocolVersion >= ControlMessage.addressesVersion, !configuration.addresses.isEmpty {
                let list = Array(configuration.addresses.prefix(ControlMessage.maximumAddresses))
                actions.append(.send(ControlMessage.frame(.addresses(list))))
            }
            if let frame = sharesFrame() { actions.append(.send(frame)) }
            if let rules = configuration.operatorRules {
                actions += sendRules(rules)
            }
            return actions
        case (.awaitingHello, _):
            return fail(ControlError(.unexpectedMessage, "\(message.type) before hello"))
        case (_, .hello):
            return fail(ControlError(.unexpectedMessage, "second hello"))
        case (_, .ping(let k)):
            return [.send(ControlMessage.frame(.pong(k)))]
        case (_, .pong(let k)):
            keepalive.pong(k, now: now)
            return []
        case (_, .error(let code, let reason)):
            return close(.peerError(code, reason))
        case (_, .goodbye):
            return close(.goodbye)
        case (_, .sessionGrant), (_, .classInfo), (_, .addresses), (_, .uplinkShares), (_, .operatorRules):
            return fail(ControlError(.unexpectedMessage, "\(message.type) sent to a concentrator"))
        }
    }

    /// Issues a new key; the one it replaces (if any) enters its grace period.
    private mutating func grant(now: UInt64) -> [ControlAction] {
        var actions: [ControlAction] = []
        if let previous {
            // Only possible with a grace longer than the rotation interval: keep two keys at most.
            actions.append(.retireKey(id: previous.id))
            self.previous = nil
        }
        let fresh = keys.nextKey()
        let lifetimeMillis = UInt64(configuration.keyLifetimeSeconds) * 1000
        let issued = IssuedKey(id: fresh.id, issuedAt: now, notAfter: now &+ lifetimeMillis)
        if let old = current {
            previous = (old.id, min(old.notAfter, now &+ configuration.previousKeyGraceMillis))
        }
        current = issued
        let message = ControlMessage.SessionGrant(
            keyID: fresh.id, key: fresh.key, lifetimeSeconds: configuration.keyLifetimeSeconds,
            notAfterMillis: issued.notAfter)
        do {
            try ControlMessage.check(message)
        } catch {
            // A broken key source is a bug of ours, not the peer's; the gateway reconnects.
            current = nil
            return actions + fail(ControlError(.keysExhausted, "key source gave an unusable key: \(error)"))
        }
        // Install before sending: the gateway may use the key as soon as it reads the grant.
        actions.append(.installKey(id: issued.id, key: fresh.key, notAfterMillis: issued.notAfter))
        actions.append(.send(ControlMessage.frame(.sessionGrant(message))))
        return actions
    }

    private func rotationTime(_ key: IssuedKey) -> UInt64 {
        key.issuedAt &+ UInt64(configuration.rotateAfterSeconds) * 1000
    }

    public mutating func tick(nowMillis now: UInt64) -> [ControlAction] {
        let timers = configuration.timers
        var actions: [ControlAction] = []
        switch state {
        case .idle, .closed:
            return []
        case .awaitingHello(let since):
            if now >= since, now - since >= timers.handshakeTimeoutMillis {
                return fail(ControlError(.timeout, "no hello \(now - since) ms after the channel opened"))
            }
        case .established:
            if let previous, now >= previous.retireAt {
                actions.append(.retireKey(id: previous.id))
                self.previous = nil
            }
            if let current, now >= rotationTime(current) {
                actions += grant(now: now)
                if isIdleOrClosed { return actions }
            }
        }
        if let keepaliveActions = keepalive.tick(now, timers) {
            if case .close(let reason) = keepaliveActions.last { return actions + close(reason) }
            actions += keepaliveActions
        }
        return actions
    }

    /// The subscriber's class changed (reload): push it if the session is up, else remember it.
    public mutating func updateClass(_ info: ControlMessage.ClassInfo, uplinkShares: [UplinkShare]? = nil)
        -> [ControlAction]
    {
        configuration.serviceClass = info
        if let uplinkShares { configuration.uplinkShares = uplinkShares }
        guard case .established = state else { return [] }
        return [.send(ControlMessage.frame(.classInfo(info)))] + (sharesFrame().map { [.send($0)] } ?? [])
    }

    /// The uplinkShares frame for this gateway, or nil when its hello predates the message or no
    /// class is pushed (a gateway without a class has no shares to clear).
    private func sharesFrame() -> [UInt8]? {
        guard let hello = peerHello, hello.protocolVersion >= ControlMessage.uplinkSharesVersion,
            configuration.serviceClass != nil
        else { return nil }
        return ControlMessage.frame(
            .uplinkShares(Array(configuration.uplinkShares.prefix(ControlMessage.maximumUplinkShares))))
    }

    /// The subscriber's class or its rules changed (reload): push the new set to a gateway that
    /// understands it, once the session is up and only when it differs from the last one sent.
    public mutating func updateOperatorRules(_ rules: [ControlMessage.OperatorRule]) -> [ControlAction] {
        configuration.operatorRules = rules
        guard case .established = state, rules != sentRules else { return [] }
        return sendRules(rules)
    }

    /// The rules as sent last, so that a reload that changes nothing for this class sends nothing.
    private var sentRules: [ControlMessage.OperatorRule]? = nil

    private mutating func sendRules(_ rules: [ControlMessage.OperatorRule]) -> [ControlAction] {
        guard let hello = peerHello, hello.protocolVersion >= ControlMessage.operatorRulesVersion else { return [] }
        sentRules = rules
        return [.send(ControlMessage.frame(.operatorRules(rules)))]
    }

    /// The transport ended without goodbye; the keys stay in the ring until they expire.
    public mutating func connectionClosed(nowMillis _: UInt64) -> [ControlAction] {
        lost()
    }

    /// Leave on purpose (subscriber removed, concentrator stopping).
    public mutating func shutdown(nowMillis _: UInt64) -> [ControlAction] {
        leave()
    }

    fileprivate var isIdleOrClosed: Bool {
        switch state {
        case .idle, .closed: return true
        default: return false
        }
    }


    fileprivate mutating func close(_ reason: ControlCloseReason) -> [ControlAction] {
        var actions: [ControlAction] = []
        if reason.retiresKeys {
            actions += liveKeyIDs.map { .retireKey(id: $0) }
            current = nil
            previous = nil
        }
        state = .closed(reason)
        return actions + [.close(reason)]
    }
}

/// Keys from the system's random source, with ids drawn until `isInUse` says the id is free
/// (typically a look-up in the shared `SessionKeyRing` under its lock).
public struct SystemSessionKeySource: SessionKeySource {
    private let isInUse: @Sendable (UInt32) -> Bool

    public init(isInUse: @escaping @Sendable (UInt32) -> Bool) {
        self.isInUse = isInUse
    }

    public mutating func nextKey() -> (id: UInt32, key: [UInt8]) {
        var random = SystemRandomNumberGenerator()
        while true {
            let id = UInt32.random(in: 1...UInt32.max, using: &random)
            if !isInUse(id) { return (id, SecureRandom.bytes(ControlMessage.SessionGrant.keySize)) }
        }
    }
}
