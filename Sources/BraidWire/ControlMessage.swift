import BraidCore

/// The control protocol that runs inside the TLS channel between a gateway and its concentrator:
/// the concentrator grants session keys for data connections and pushes the subscriber's service
/// class; both ends keep the channel alive. Pure codec: bytes in, values out.
///
/// Every message travels in one frame with a 4-byte header:
///
///      0               1               2               3
///     +---------------+---------------+-------------------------------+
///     |  Version = 1  |     Type      |     Payload length (bytes)    |
///     +---------------+---------------+-------------------------------+
///     |                        Payload ...                            |
///     +---------------------------------------------------------------+
///
/// Integers are big-endian. Strings are one length byte followed by UTF-8 without control
/// characters (they end up in logs). A payload is at most `maximumPayloadSize` bytes, so a reader
/// never buffers more than one small frame whatever the length field claims.
public enum ControlMessage: Equatable, Sendable {
    /// Gateway → concentrator, first message: the protocol version it speaks and its software.
    case hello(Hello)
    /// Concentrator → gateway: a session key for data connections (after hello, then before expiry).
    case sessionGrant(SessionGrant)
    /// Concentrator → gateway: the subscriber's service class (after the first grant, on change).
    case classInfo(ClassInfo)
    /// Either way: are you there? Answered at once by `pong` with the same values.
    case ping(Keepalive)
    /// Either way: the answer to `ping`.
    case pong(Keepalive)
    /// Either way: the sender is closing because of `code`; `reason` is for the peer's log.
    case error(code: ControlErrorCode, reason: String)
    /// Either way: the sender is closing on purpose (shutdown, reload).
    case goodbye
    /// Concentrator → gateway, to a gateway whose hello says `addressesVersion` or later: the
    /// addresses the concentrator is reached at, of both families, so an uplink of either family
    /// can carry subflows. Authenticated by the TLS channel, unlike an MPTCP ADD_ADDR.
    case addresses([IPAddress])
    /// Concentrator → gateway: the shares the subscriber's class sets for the gateway's uplinks
    /// (`list uplink_share`), after classInfo and again whenever the class changes; an empty list
    /// clears them. Sent only to gateways whose hello names `uplinkSharesVersion` or later.
    case uplinkShares([UplinkShare])
    /// Concentrator → gateway, to a gateway whose hello says `operatorRulesVersion` or later: the
    /// rules the operator provisions for the subscriber's class, in order, replacing the last set
    /// sent (empty: none). See ControlMessage+OperatorRules.
    case operatorRules([OperatorRule])

    /// Version of the framing and of the protocol spoken in it.
    public static let version: UInt8 = 1
    /// The protocol version a gateway names in hello when it understands `addresses`; the framing
    /// stays at `version`, and a concentrator sends `addresses` only to such a gateway.
    public static let addressesVersion: UInt8 = 2
    /// The protocol version a gateway names in hello when it understands `uplinkShares` (each
    /// message type keeps its own check, so versions other message types bring do not matter).
    public static let uplinkSharesVersion: UInt8 = 3
    /// The highest protocol version this build speaks: what a gateway names in hello.
    public static let spokenVersion: UInt8 = max(addressesVersion, uplinkSharesVersion, operatorRulesVersion)
    /// At most this many shares in one `uplinkShares` message (names up to 64 bytes: 530 bytes).
    public static let maximumUplinkShares = 8
    /// The protocol version a gateway names in hello when it also understands `operatorRules`.
    public static let operatorRulesVersion: UInt8 = 3
    /// At most this many addresses in one `addresses` message.
    public static let maximumAddresses = 16
    public static let headerSize = 4
    /// Bounds every buffer of a reader; the largest payload (an error with a full reason) is 258.
    /// `operatorRules` alone may be larger, up to `OperatorRuleLimits.maximumPayloadSize`.
    public static let maximumPayloadSize = 1024

    /// The largest payload a frame of `type` may announce; a larger one is refused from its header.
    public static func maximumPayloadSize(of type: MessageType) -> Int {
        type == .operatorRules ? OperatorRuleLimits.maximumPayloadSize : maximumPayloadSize
    }
    /// Longest string field in bytes (its length is one byte).
    public static let maximumStringSize = 255

    /// Wire types.
    public enum MessageType: UInt8, Sendable, CaseIterable {
        case hello = 1
        case sessionGrant = 2
        case classInfo = 3
        case ping = 4
        case pong = 5
        case error = 6
        case goodbye = 7
        case addresses = 8
        case uplinkShares = 10
        case operatorRules = 9
    }

    public struct Hello: Equatable, Sendable {
        /// The highest control protocol version the gateway speaks.
        public var protocolVersion: UInt8
        /// The gateway's software version, for the concentrator's log.
        public var software: String

        public init(protocolVersion: UInt8 = ControlMessage.version, software: String) {
            self.protocolVersion = protocolVersion
            self.software = software
        }
    }

    public struct SessionGrant: Equatable, Sendable {
        public static let keySize = 32

        /// Goes into the Convert authentication TLV; never 0, which names the pre-shared key.
        public var keyID: UInt32
        /// HMAC-SHA256 key, `keySize` bytes.
        public var key: [UInt8]
        /// How long the key is valid from the moment it is received.
        public var lifetimeSeconds: UInt32
        /// When the concentrator stops accepting the key, in milliseconds of its own clock.
        /// Informative for the gateway, whose clock may differ: it counts `lifetimeSeconds` instead.
        public var notAfterMillis: UInt64

        public init(keyID: UInt32, key: [UInt8], lifetimeSeconds: UInt32, notAfterMillis: UInt64) {
            self.keyID = keyID
            self.key = key
            self.lifetimeSeconds = lifetimeSeconds
            self.notAfterMillis = notAfterMillis
        }
    }

    public struct ClassInfo: Equatable, Sendable {
        /// The operator's name for the plan.
        public var name: String
        /// Download and upload limits in bit/s; 0 means no limit.
        public var rateDownBitsPerSecond: UInt64
        public var rateUpBitsPerSecond: UInt64
        /// Concurrent data connections allowed; 0 means no limit.
        public var maxSessions: UInt32

        public init(name: String, rateDownBitsPerSecond: UInt64, rateUpBitsPerSecond: UInt64, maxSessions: UInt32) {
            self.name = name
            self.rateDownBitsPerSecond = rateDownBitsPerSecond
            self.rateUpBitsPerSecond = rateUpBitsPerSecond
            self.maxSessions = maxSessions
        }
    }

    public struct Keepalive: Equatable, Sendable {
        /// Chosen by the pinger so it can match the answer.
        public var nonce: UInt64
        /// The pinger's clock when sending, echoed back so it can measure the round trip.
        public var timestampMillis: UInt64

        public init(nonce: UInt64, timestampMillis: UInt64) {
            self.nonce = nonce
            self.timestampMillis = timestampMillis
        }
    }

    /// Wire type of this message.
    public var type: MessageType {
        switch self {
        case .hello: return .hello
        case .sessionGrant: return .sessionGrant
        case .classInfo: return .classInfo
        case .ping: return .ping
        case .pong: return .pong
        case .error: return .error
        case .goodbye: return .goodbye
        case .addresses: return .addresses
        case .uplinkShares: return .uplinkShares
        case .operatorRules: return .operatorRules
        }
    }
}

// MARK: - Encoding

extension ControlMessage {
    /// The whole frame, header included. Throws when a field cannot be represented (a string too
    /// long or with control characters, a key of the wrong size, key id 0): the encoder refuses
    /// exactly what the decoder would refuse, so a frame we send is one the peer can read.
    public func encode() throws -> [UInt8] {
        var w = ControlWriter()
        switch self {
        case .hello(let h):
            w.u8(h.protocolVersion)
            try w.string(h.software, field: "hello.software")
        case .sessionGrant(let g):
            try Self.check(g)
            w.u32(g.keyID)
            w.bytes(g.key)
            w.u32(g.lifetimeSeconds)
            w.u64(g.notAfterMillis)
        case .classInfo(let c):
            try Self.check(c)
            try w.string(c.name, field: "classInfo.name")
            w.u64(c.rateDownBitsPerSecond)
            w.u64(c.rateUpBitsPerSecond)
            w.u32(c.maxSessions)
        case .ping(let k), .pong(let k):
            w.u64(k.nonce)
            w.u64(k.timestampMillis)
        case .error(let code, let reason):
            w.u16(code.rawValue)
            try w.string(reason, field: "error.reason")
        case .goodbye:
            break
        case .addresses(let list):
            guard list.count <= Self.maximumAddresses else {
                throw ControlError(.invalidValue, "addresses: \(list.count) exceed \(Self.maximumAddresses)")
            }
            // Count, then per address its family (4 or 6) and its 4 or 16 bytes.
            w.u8(UInt8(list.count))
            for a in list {
                w.u8(a.isIPv4 ? 4 : 6)
                w.bytes(a.bytes)
            }
        case .uplinkShares(let list):
            try Self.check(list)
            // Count, then per share the uplink's name and the percentage.
            w.u8(UInt8(list.count))
            for share in list {
                try w.string(share.uplink, field: "uplinkShares.uplink")
                w.u8(share.percent)
            }
        case .operatorRules(let rules):
            try Self.encode(rules, into: &w)
        }
        let payload = w.out
        // Cannot exceed the maximum: the largest other payload is 1 + 16 * 17 bytes, and the
        // rules' encoder refuses a set beyond its own bound.
        precondition(payload.count <= Self.maximumPayloadSize(of: type))
        return [Self.version, type.rawValue, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)] + payload
    }

    /// What a share list may hold: few enough for one frame, names as uci section names are, 0 to
    /// 100 percent, each uplink once.
    static func check(_ list: [UplinkShare]) throws {
        guard list.count <= maximumUplinkShares else {
            throw ControlError(.invalidValue, "uplinkShares: \(list.count) exceed \(maximumUplinkShares)")
        }
        var seen: Set<String> = []
        for share in list {
            guard UplinkShare("\(share.uplink)=\(share.percent)") == share else {
                throw ControlError(
                    .invalidValue, "uplinkShares: \(share) is not UPLINK=0..100 with a section name of at most "
                        + "\(UplinkShare.maximumNameBytes) bytes")
            }
            guard seen.insert(share.uplink).inserted else {
                throw ControlError(.invalidValue, "uplinkShares: uplink \(share.uplink) named twice")
            }
        }
    }

    static func check(_ g: SessionGrant) throws {
        guard g.keyID != 0 else {
            throw ControlError(.invalidValue, "sessionGrant.keyID 0 is reserved for the pre-shared key")
        }
        guard g.key.count == SessionGrant.keySize else {
            throw ControlError(
                .invalidValue, "sessionGrant.key of \(g.key.count) bytes, expected \(SessionGrant.keySize)")
        }
        guard g.lifetimeSeconds != 0 else { throw ControlError(.invalidValue, "sessionGrant.lifetimeSeconds 0") }
    }

    static func check(_ c: ClassInfo) throws {
        guard !c.name.isEmpty else { throw ControlError(.invalidValue, "classInfo.name is empty") }
    }
}

/// Appends big-endian fields.
struct ControlWriter {
    var out: [UInt8] = []

    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u16(_ v: UInt16) { out += [UInt8(v >> 8), UInt8(v & 0xff)] }
    mutating func u32(_ v: UInt32) {
        for i in (0..<4).reversed() { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }
    mutating func u64(_ v: UInt64) {
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
    mutating func bytes(_ b: [UInt8]) { out += b }

    mutating func string(_ s: String, field: String) throws {
        let utf8 = Array(s.utf8)
        guard utf8.count <= ControlMessage.maximumStringSize else {
            throw ControlError(
                .invalidValue, "\(field) of \(utf8.count) bytes exceeds \(ControlMessage.maximumStringSize)")
        }
        if let bad = ControlReader.controlCharacter(in: s) {
            throw ControlError(.invalidValue, "\(field) contains control character U+\(hex(bad))")
        }
        out.append(UInt8(utf8.count))
        out += utf8
    }
}

func hex(_ v: UInt32) -> String {
    let digits = String(v, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

// MARK: - Decoding

extension ControlMessage {
    /// The outcome of looking at the start of a byte stream.
    public enum ParseResult: Equatable, Sendable {
        /// Not enough bytes yet; at least `needed` bytes in total are required to go on.
        case incomplete(needed: Int)
        /// A whole frame, occupying the first `length` bytes of the stream.
        case message(ControlMessage, length: Int)
    }

    /// Parses the frame at the start of `bytes`; bytes after it belong to the next frame.
    /// The header is checked before the payload arrives, so an oversized or unknown frame is
    /// refused at once instead of being waited for.
    public static func parse<C: Collection>(_ bytes: C) throws -> ParseResult where C.Element == UInt8 {
        let header = Array(bytes.prefix(headerSize))
        guard header.count == headerSize else { return .incomplete(needed: headerSize) }
        guard header[0] == version else {
            throw ControlError(.unsupportedVersion, "frame version \(header[0]), only \(version) is supported")
        }
        guard let type = MessageType(rawValue: header[1]) else {
            throw ControlError(.unknownType, "frame type \(header[1])")
        }
        let length = Int(header[2]) << 8 | Int(header[3])
        let limit = maximumPayloadSize(of: type)
        guard length <= limit else {
            throw ControlError(.frameTooLarge, "\(type) frame of \(length) bytes exceeds \(limit)")
        }
        let total = headerSize + length
        let frame = Array(bytes.prefix(total))
        guard frame.count == total else { return .incomplete(needed: total) }
        return .message(try decodePayload(type: type, frame[headerSize...]), length: total)
    }

    /// Decodes exactly one frame; a short frame or bytes after it are errors.
    public static func decode(frame: [UInt8]) throws -> ControlMessage {
        switch try parse(frame) {
        case .incomplete(let needed):
            throw ControlError(.truncated, "frame of \(frame.count) bytes, expected \(needed)")
        case .message(let message, let length):
            guard length == frame.count else {
                throw ControlError(.trailingBytes, "\(frame.count - length) bytes after a \(message.type) frame")
            }
            return message
        }
    }

    static func decodePayload(type: MessageType, _ payload: ArraySlice<UInt8>) throws -> ControlMessage {
        var r = ControlReader(payload, message: type)
        let message: ControlMessage
        switch type {
        case .hello:
            message = .hello(Hello(protocolVersion: try r.u8("protocolVersion"), software: try r.string("software")))
        case .sessionGrant:
            let grant = SessionGrant(
                keyID: try r.u32("keyID"), key: try r.bytes(SessionGrant.keySize, "key"),
                lifetimeSeconds: try r.u32("lifetimeSeconds"), notAfterMillis: try r.u64("notAfterMillis"))
            try check(grant)
            message = .sessionGrant(grant)
        case .classInfo:
            let info = ClassInfo(
                name: try r.string("name"), rateDownBitsPerSecond: try r.u64("rateDown"),
                rateUpBitsPerSecond: try r.u64("rateUp"), maxSessions: try r.u32("maxSessions"))
            try check(info)
            message = .classInfo(info)
        case .ping:
            message = .ping(Keepalive(nonce: try r.u64("nonce"), timestampMillis: try r.u64("timestamp")))
        case .pong:
            message = .pong(Keepalive(nonce: try r.u64("nonce"), timestampMillis: try r.u64("timestamp")))
        case .error:
            message = .error(code: ControlErrorCode(rawValue: try r.u16("code")), reason: try r.string("reason"))
        case .goodbye:
            message = .goodbye
        case .addresses:
            let count = Int(try r.u8("count"))
            guard count <= maximumAddresses else {
                throw ControlError(.invalidValue, "addresses.count \(count) exceeds \(maximumAddresses)")
            }
            var list: [IPAddress] = []
            for i in 0..<count {
                let family = try r.u8("family[\(i)]")
                guard family == 4 || family == 6 else {
                    throw ControlError(.invalidValue, "addresses.family[\(i)] \(family), expected 4 or 6")
                }
                list.append(IPAddress(bytes: try r.bytes(family == 4 ? 4 : 16, "address[\(i)]"))!)
            }
            message = .addresses(list)
        case .uplinkShares:
            let count = Int(try r.u8("count"))
            guard count <= maximumUplinkShares else {
                throw ControlError(.invalidValue, "uplinkShares.count \(count) exceeds \(maximumUplinkShares)")
            }
            var list: [UplinkShare] = []
            for i in 0..<count {
                list.append(UplinkShare(uplink: try r.string("uplink[\(i)]"), percent: try r.u8("percent[\(i)]")))
            }
            try check(list)
            message = .uplinkShares(list)
        case .operatorRules:
            message = .operatorRules(try decodeOperatorRules(&r))
        }
        try r.finish()
        return message
    }
}

/// Reads big-endian fields off a payload; every shortfall names the message and the field.
struct ControlReader {
    private let bytes: ArraySlice<UInt8>
    private var offset: Int
    private let message: ControlMessage.MessageType

    init(_ bytes: ArraySlice<UInt8>, message: ControlMessage.MessageType) {
        self.bytes = bytes
        self.offset = bytes.startIndex
        self.message = message
    }

    private mutating func take(_ n: Int, _ field: String) throws -> ArraySlice<UInt8> {
        guard bytes.endIndex - offset >= n else {
            throw ControlError(
                .truncated, "\(message).\(field) needs \(n) bytes, \(bytes.endIndex - offset) left in the payload")
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func u8(_ field: String) throws -> UInt8 { try take(1, field).first! }
    mutating func u16(_ field: String) throws -> UInt16 { try take(2, field).reduce(0) { $0 << 8 | UInt16($1) } }
    mutating func u32(_ field: String) throws -> UInt32 { try take(4, field).reduce(0) { $0 << 8 | UInt32($1) } }
    mutating func u64(_ field: String) throws -> UInt64 { try take(8, field).reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func bytes(_ n: Int, _ field: String) throws -> [UInt8] { Array(try take(n, field)) }

    mutating func string(_ field: String) throws -> String {
        let length = Int(try u8(field + " length"))
        let raw = try take(length, field)
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw ControlError(.invalidValue, "\(message).\(field) is not UTF-8")
        }
        if let bad = Self.controlCharacter(in: s) {
            throw ControlError(.invalidValue, "\(message).\(field) contains control character U+\(hex(bad))")
        }
        return s
    }

    func finish() throws {
        guard offset == bytes.endIndex else {
            throw ControlError(.trailingBytes, "\(bytes.endIndex - offset) bytes after the last field of \(message)")
        }
    }

    /// The first C0/C1 control character or DEL in `s`, if any: such text could forge log lines.
    static func controlCharacter(in s: String) -> UInt32? {
        s.unicodeScalars.first { $0.value < 0x20 || ($0.value >= 0x7f && $0.value < 0xa0) }?.value
    }
}

/// Splits a byte stream into control messages. Buffers at most one frame plus what the last
/// `append` brought; a frame the parser refuses poisons the stream, since framing is lost.
public struct ControlFrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    private var failure: ControlError?

    public init() {}

    /// Bytes received but not yet returned as a message.
    public var bufferedCount: Int { buffer.count - start }

    /// Adds received bytes; dropped once the stream failed, since nothing after can be framed.
    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard failure == nil else { return }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole message, or nil until more bytes arrive. Throws the same error for every
    /// call once the stream is unreadable.
    public mutating func next() throws -> ControlMessage? {
        if let failure { throw failure }
        do {
            switch try ControlMessage.parse(buffer[start...]) {
            case .incomplete:
                compact()
                return nil
            case .message(let message, let length):
                start += length
                if start == buffer.count { compact() }
                return message
            }
        } catch let e as ControlError {
            failure = e
            buffer = []
            start = 0
            throw e
        }
    }

    private mutating func compact() {
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
    }
}

// MARK: - Errors

/// Error codes carried by the `error` message (and by `ControlError` locally).
public struct ControlErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Framing or field-level problems: the stream cannot be read further.
    public static let truncated = Self(rawValue: 1)
    public static let frameTooLarge = Self(rawValue: 2)
    public static let unsupportedVersion = Self(rawValue: 3)
    public static let unknownType = Self(rawValue: 4)
    public static let trailingBytes = Self(rawValue: 5)
    public static let invalidValue = Self(rawValue: 6)
    /// A well-formed message at the wrong moment or from the wrong end.
    public static let unexpectedMessage = Self(rawValue: 7)
    /// Session-level outcomes.
    public static let timeout = Self(rawValue: 16)
    public static let notAuthorized = Self(rawValue: 17)
    public static let keysExhausted = Self(rawValue: 18)
    public static let internalError = Self(rawValue: 19)

    public var description: String {
        switch self {
        case .truncated: return "truncated"
        case .frameTooLarge: return "frame too large"
        case .unsupportedVersion: return "unsupported version"
        case .unknownType: return "unknown message type"
        case .trailingBytes: return "trailing bytes"
        case .invalidValue: return "invalid value"
        case .unexpectedMessage: return "unexpected message"
        case .timeout: return "timeout"
        case .notAuthorized: return "not authorized"
        case .keysExhausted: return "keys exhausted"
        case .internalError: return "internal error"
        default: return "error \(rawValue)"
        }
    }
}

/// What went wrong reading, writing or running the control protocol, with the offending value.
public struct ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: ControlErrorCode
    public var reason: String

    public init(_ code: ControlErrorCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
}
