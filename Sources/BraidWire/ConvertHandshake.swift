import BraidCore

/// What a concentrator learned from a valid, authenticated request.
public struct ConvertRequest: Equatable, Sendable {
    public var destination: Endpoint
    /// The client sent an Info TLV and wants a Supported TCP Extensions TLV back (§5.2.1).
    public var wantsInfo: Bool
    public var authentication: ConvertAuthentication
}

/// The concentrator's side of the handshake: feed bytes as they arrive; it says when to connect
/// or what error to send. It owns no socket and no clock.
public struct ConvertServerHandshake: Sendable {
    public enum Action: Equatable, Sendable {
        /// Wait for more bytes.
        case needMore
        /// Connect to `request.destination`; `remainder` is client data that followed the message.
        case connect(ConvertRequest, remainder: [UInt8])
        /// Send `ConvertServerHandshake.errorReply(error.code)` and close.
        case reject(ConvertError)
    }

    /// Finds the key for a request's key id, or throws why there is none.
    public typealias KeyLookup = @Sendable (_ keyID: UInt32) throws -> [UInt8]

    private var buffer: [UInt8] = []
    private let lookup: KeyLookup
    /// The names this concentrator answers to; a MAC bound to any of them is good.
    private let identities: [String]
    /// Requests stamped before this (the process's start, ms since 1970) are refused: the replay
    /// cache is empty after a restart, so without this floor a request captured before the
    /// restart could be played again while its timestamp is still in the window.
    private let notBeforeMillis: UInt64

    /// Accepts requests authenticated with this one key, for its identity (the pre-shared key mode).
    public init(authenticator: ConvertAuthenticator, notBeforeMillis: UInt64 = 0) {
        self.lookup = { id in
            guard id == authenticator.keyID else { throw ConvertError(.notAuthorized, "unknown key id \(id)") }
            return authenticator.key
        }
        self.identities = [authenticator.identity]
        self.notBeforeMillis = notBeforeMillis
    }

    /// Accepts requests authenticated with whichever key `lookup` returns for their key id:
    /// session keys from a `SessionKeyRing` (read under the owner's lock), and the pre-shared
    /// key for id 0 if that mode is kept. Called only for well-formed requests. The MAC must be
    /// bound to one of `identities`; a timestamp before `notBeforeMillis` is refused.
    public init(lookup: @escaping KeyLookup, identities: [String] = [""], notBeforeMillis: UInt64 = 0) {
        self.lookup = lookup
        self.identities = identities
        self.notBeforeMillis = notBeforeMillis
    }

    /// Bytes buffered so far (bounded by `ConvertMessage.maximumSize` plus one read).
    public var bufferedCount: Int { buffer.count }

    /// Why the last `.reject` was given, for logs and counters; nil until then. The client is
    /// sent `unauthenticatedReply` whatever it is.
    public private(set) var refusal: ConvertRefusal?

    /// Appends bytes and decides. `replay` is consulted only after the MAC is good and the
    /// timestamp is not older than the process, so forged requests cannot fill the replay cache.
    public mutating func feed(
        _ bytes: some Collection<UInt8>, nowMillis: UInt64, replay: inout some ReplayAdmission
    ) -> Action {
        buffer.append(contentsOf: bytes)
        do {
            let parsed = try Self.step({ $0.code == .unsupportedVersion ? .unsupportedVersion : .malformed }) {
                try ConvertMessage.parse(buffer)
            }
            switch parsed {
            case .incomplete:
                return .needMore
            case .message(let message, let length):
                let raw = Array(buffer[0..<length])
                let request = try Self.step({ $0.code == .notAuthorized ? .noAuthentication : .malformed }) {
                    try Self.validate(message)
                }
                let auth = try authenticate(raw)
                guard auth.timestampMillis >= notBeforeMillis else {
                    throw ConvertRefused(
                        .beforeStart,
                        ConvertError(
                            .notAuthorized,
                            "timestamp \(notBeforeMillis - auth.timestampMillis) ms before this process started"))
                }
                try Self.step({ Self.admissionRefusal($0, auth, nowMillis: nowMillis, replay) }) {
                    try replay.admit(auth, nowMillis: nowMillis)
                }
                let rest = Array(buffer[length...])
                buffer = []
                return .connect(
                    ConvertRequest(destination: request.0, wantsInfo: request.1, authentication: auth), remainder: rest)
            }
        } catch let r as ConvertRefused {
            refusal = r.reason
            return .reject(r.error)
        } catch let e as ConvertError {
            refusal = .malformed
            return .reject(e)
        } catch {
            refusal = .malformed
            return .reject(ConvertError(.malformedMessage, "\(error)"))
        }
    }

    /// The client closed its side (or the connection ended) before a whole request arrived:
    /// always a refusal, `.truncated`, however many bytes came.
    public mutating func endOfStream() -> Action {
        refusal = .truncated
        return .reject(ConvertError(.malformedMessage, "connection closed after \(buffer.count) bytes of the request"))
    }

    /// Runs one check of `feed`; a `ConvertError` it throws is refused for the reason `classify` gives.
    private static func step<T>(_ classify: (ConvertError) -> ConvertRefusal, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as ConvertError {
            throw ConvertRefused(classify(e), e)
        }
    }

    /// Why `ReplayGuard.admit` refused a request whose MAC was good.
    private static func admissionRefusal(
        _ error: ConvertError, _ auth: ConvertAuthentication, nowMillis: UInt64, _ replay: some ReplayAdmission
    ) -> ConvertRefusal {
        if error.code == .resourceExceeded { return .replayCacheFull }
        return replay.isFresh(auth.timestampMillis, nowMillis: nowMillis) ? .replayed : .stale
    }

    /// Checks the MAC with the key named by the request's key id. A lookup failure (unknown or
    /// expired key) is a plain refusal: the client learns nothing about which keys exist.
    private func authenticate(_ raw: [UInt8]) throws -> ConvertAuthentication {
        guard let (_, claimed) = ConvertAuthenticator.findAuthentication(raw) else {
            throw ConvertRefused(.noAuthentication, ConvertError(.notAuthorized, "no authentication TLV"))
        }
        let key: [UInt8]
        do {
            key = try lookup(claimed.keyID)
        } catch let e as ConvertError {
            throw ConvertRefused(.unknownKey, e)
        } catch let e as ControlError {
            throw ConvertRefused(.unknownKey, ConvertError(.notAuthorized, e.reason))
        } catch {
            throw ConvertRefused(.unknownKey, ConvertError(.notAuthorized, "\(error)"))
        }
        return try Self.step({ _ in .badMAC }) {
            try ConvertAuthenticator.verify(raw: raw, key: key, keyID: claimed.keyID, identities: identities)
        }
    }

    /// A request is exactly one Connect TLV, one authentication TLV and optionally Info.
    static func validate(_ message: ConvertMessage) throws -> (Endpoint, Bool) {
        var destination: Endpoint?
        var wantsInfo = false
        var sawAuth = false
        for tlv in message.tlvs {
            switch tlv {
            case .connect(let ep, let options):
                guard destination == nil else { throw ConvertError(.malformedMessage, "two Connect TLVs") }
                guard options.isEmpty else {
                    throw ConvertError(.unsupportedTCPOption, "Connect TLV carries \(options.count) bytes of TCP options")
                }
                destination = ep
            case .info:
                wantsInfo = true
            case .authentication:
                guard !sawAuth else { throw ConvertError(.malformedMessage, "two authentication TLVs") }
                sawAuth = true
            default:
                throw ConvertError(.unsupportedMessage, "TLV type \(tlv.type) is not accepted in a request")
            }
        }
        guard sawAuth else { throw ConvertError(.notAuthorized, "no authentication TLV") }
        guard let destination else { throw ConvertError(.malformedMessage, "no Connect TLV") }
        return (destination, wantsInfo)
    }

    /// TCP option kinds the concentrator supports towards the client: MPTCP (kind 30, RFC 8684).
    public static let supportedExtensions: [UInt8] = [30]

    /// The reply sent once the destination accepted the connection (§4.2).
    public static func successReply(wantsInfo: Bool) -> [UInt8] {
        // Cannot fail: a fixed, small message.
        try! ConvertMessage(wantsInfo ? [.supportedTCPExtensions(supportedExtensions)] : []).encode()
    }

    /// The reply that carries an error to the client (§5.2.6).
    public static func errorReply(_ code: ConvertErrorCode) -> [UInt8] {
        try! ConvertMessage([.error(code, value: [])]).encode()
    }
}

/// The gateway's side: builds the request and reads the concentrator's reply off the stream.
public struct ConvertClientHandshake: Sendable {
    public enum Action: Equatable, Sendable {
        case needMore
        /// The destination accepted; `remainder` is the first server data, to pass to the LAN.
        case established(supportedExtensions: [UInt8], remainder: [UInt8])
        /// The concentrator refused or the destination failed; the LAN connection gets a reset.
        case refused(ConvertError)
    }

    private var buffer: [UInt8] = []

    public init() {}

    /// The request for `destination`, authenticated with `authenticator`.
    public static func request(
        to destination: Endpoint, authenticator: ConvertAuthenticator, nowMillis: UInt64, nonce: [UInt8],
        askInfo: Bool = false
    ) throws -> [UInt8] {
        var tlvs: [ConvertTLV] = [.connect(destination, tcpOptions: [])]
        if askInfo { tlvs.append(.info) }
        return try authenticator.seal(tlvs, nowMillis: nowMillis, nonce: nonce)
    }

    public mutating func feed(_ bytes: some Collection<UInt8>) -> Action {
        buffer.append(contentsOf: bytes)
        do {
            switch try ConvertMessage.parse(buffer) {
            case .incomplete:
                return .needMore
            case .message(let message, let length):
                let rest = Array(buffer[length...])
                buffer = []
                var extensions: [UInt8] = []
                for tlv in message.tlvs {
                    switch tlv {
                    case .error(let code, _):
                        return .refused(ConvertError(code, "refused by the concentrator"))
                    case .supportedTCPExtensions(let kinds):
                        extensions = kinds
                    default:
                        continue  // Extended TCP Header and friends are informational here.
                    }
                }
                return .established(supportedExtensions: extensions, remainder: rest)
            }
        } catch let e as ConvertError {
            return .refused(ConvertError(e.code, "unreadable reply: \(e.reason)"))
        } catch {
            return .refused(ConvertError(.malformedMessage, "\(error)"))
        }
    }
}
