import BraidCore

/// RFC 8803 §5 Convert messages: a 4-byte fixed header followed by TLVs, every length counted in
/// 32-bit words. Pure codec: bytes in, values out; no sockets, no clocks.
///
///      0                   1                   2                   3
///     +---------------+---------------+-------------------------------+
///     |  Version = 1  |  Total Length |          Unassigned           |
///     +---------------+---------------+-------------------------------+
///     |     Type      |    Length     |            Value ...          |
///     +---------------+---------------+-------------------------------+
public struct ConvertMessage: Equatable, Sendable {
    public static let version: UInt8 = 1
    /// Total Length is one byte of 32-bit words, so a message is at most 1020 bytes (§5.1).
    public static let maximumSize = 255 * 4

    public var tlvs: [ConvertTLV]

    public init(_ tlvs: [ConvertTLV]) {
        self.tlvs = tlvs
    }

    /// Serialises the message; throws when the TLVs do not fit the one-byte Total Length.
    public func encode() throws -> [UInt8] {
        var body: [UInt8] = []
        for tlv in tlvs {
            body += try tlv.encode()
        }
        let total = 4 + body.count
        guard total <= Self.maximumSize else {
            throw ConvertError(.malformedMessage, "message of \(total) bytes exceeds \(Self.maximumSize)")
        }
        return [Self.version, UInt8(total / 4), 0, 0] + body
    }

    /// The outcome of looking at the start of a byte stream.
    public enum ParseResult: Equatable, Sendable {
        /// Not enough bytes yet; at least `needed` bytes in total are required to go on.
        case incomplete(needed: Int)
        /// A whole message, occupying the first `length` bytes of the stream.
        case message(ConvertMessage, length: Int)
    }

    /// Parses a Convert message at the start of `bytes`. Any bytes after it are application data.
    /// Throws `ConvertError` naming the RFC 8803 error code that the peer should receive.
    public static func parse<C: Collection>(_ bytes: C) throws -> ParseResult where C.Element == UInt8 {
        let b = Array(bytes.prefix(maximumSize))
        guard b.count >= 4 else { return .incomplete(needed: 4) }
        guard b[0] == version else {
            throw ConvertError(.unsupportedVersion, "version \(b[0]), only \(version) is supported")
        }
        let total = Int(b[1]) * 4
        guard total >= 4 else { throw ConvertError(.malformedMessage, "total length 0") }
        guard b.count >= total else { return .incomplete(needed: total) }
        var tlvs: [ConvertTLV] = []
        var offset = 4
        while offset < total {
            guard total - offset >= 2 else {
                throw ConvertError(.malformedMessage, "truncated TLV header at byte \(offset)")
            }
            let type = b[offset]
            let length = Int(b[offset + 1]) * 4
            guard length >= 4 else {
                throw ConvertError(.malformedMessage, "TLV type \(type) with length 0 at byte \(offset)")
            }
            guard offset + length <= total else {
                throw ConvertError(
                    .malformedMessage, "TLV type \(type) of \(length) bytes overruns the message at byte \(offset)")
            }
            tlvs.append(try ConvertTLV.decode(type: type, value: b[(offset + 2)..<(offset + length)]))
            offset += length
        }
        return .message(ConvertMessage(tlvs), length: total)
    }
}

/// One TLV of a Convert message (RFC 8803 §5.2 and the IANA Convert TLV registry).
public enum ConvertTLV: Equatable, Sendable {
    /// Type 1: asks the converter which TCP extensions it supports (§5.2.1).
    case info
    /// Type 10: where the converter should connect (§5.2.2). `tcpOptions` are passed through.
    case connect(Endpoint, tcpOptions: [UInt8])
    /// Type 20: the TCP options the server put in its SYN-ACK (§5.2.3).
    case extendedTCPHeader([UInt8])
    /// Type 21: the TCP option kinds the converter supports (§5.2.4).
    case supportedTCPExtensions([UInt8])
    /// Type 22: an opaque cookie (§5.2.5).
    case cookie([UInt8])
    /// Type 30: an error, with its optional value bytes (§5.2.6).
    case error(ConvertErrorCode, value: [UInt8])
    /// Type 192 (private use): braid's connection authentication, see `ConvertAuthentication`.
    case authentication(ConvertAuthentication)
    /// Any other type, kept so that a receiver can decide how to treat it.
    case unknown(type: UInt8, value: [UInt8])

    public static let infoType: UInt8 = 1
    public static let connectType: UInt8 = 10
    public static let extendedTCPHeaderType: UInt8 = 20
    public static let supportedTCPExtensionsType: UInt8 = 21
    public static let cookieType: UInt8 = 22
    public static let errorType: UInt8 = 30
    public static let authenticationType: UInt8 = 192

    /// Wire type of this TLV.
    public var type: UInt8 {
        switch self {
        case .info: return Self.infoType
        case .connect: return Self.connectType
        case .extendedTCPHeader: return Self.extendedTCPHeaderType
        case .supportedTCPExtensions: return Self.supportedTCPExtensionsType
        case .cookie: return Self.cookieType
        case .error: return Self.errorType
        case .authentication: return Self.authenticationType
        case .unknown(let t, _): return t
        }
    }

    func encode() throws -> [UInt8] {
        // `value` is everything after the Type and Length bytes; it is zero-padded to a word.
        let value: [UInt8]
        switch self {
        case .info:
            value = [0, 0]
        case .connect(let ep, let options):
            value = [UInt8(ep.port >> 8), UInt8(ep.port & 0xff)] + ep.address.mappedIPv6Bytes + options
        case .extendedTCPHeader(let options):
            value = [0, 0] + options
        case .supportedTCPExtensions(let kinds):
            value = [0, 0] + kinds
        case .cookie(let c):
            value = [0, 0] + c
        case .error(let code, let v):
            value = [code.rawValue] + (v.isEmpty ? [0] : v)
        case .authentication(let auth):
            value = auth.encodeValue()
        case .unknown(_, let v):
            value = v
        }
        var out = [type, 0] + value
        while out.count % 4 != 0 { out.append(0) }
        guard out.count <= 255 * 4 else {
            throw ConvertError(.malformedMessage, "TLV type \(type) of \(out.count) bytes is too long")
        }
        out[1] = UInt8(out.count / 4)
        return out
    }

    static func decode(type: UInt8, value v: ArraySlice<UInt8>) throws -> ConvertTLV {
        let v = Array(v)
        switch type {
        case infoType:
            return .info
        case connectType:
            // Port (2) + address (16); the TLV is at least 5 words including its 2-byte header.
            guard v.count >= 18 else {
                throw ConvertError(.malformedMessage, "Connect TLV of \(v.count + 2) bytes, need at least 20")
            }
            let port = UInt16(v[0]) << 8 | UInt16(v[1])
            guard port != 0 else { throw ConvertError(.malformedMessage, "Connect TLV with port 0") }
            guard let addr = IPAddress(mappedIPv6Bytes: Array(v[2..<18])) else {
                throw ConvertError(.malformedMessage, "Connect TLV with an unreadable address")
            }
            return .connect(Endpoint(address: addr, port: port), tcpOptions: Array(v[18...]))
        case extendedTCPHeaderType:
            return .extendedTCPHeader(Array(v.dropFirst(2)))
        case supportedTCPExtensionsType:
            // Trailing zero bytes are padding: option kind 0 (End of Option List) is never listed.
            var kinds = Array(v.dropFirst(2))
            while kinds.last == 0 { kinds.removeLast() }
            return .supportedTCPExtensions(kinds)
        case cookieType:
            return .cookie(Array(v.dropFirst(2)))
        case errorType:
            return .error(ConvertErrorCode(rawValue: v[0]), value: Array(v.dropFirst()))
        case authenticationType:
            return .authentication(try ConvertAuthentication(value: v))
        default:
            return .unknown(type: type, value: v)
        }
    }
}

/// RFC 8803 §5.2.6 error codes (IANA "Convert Errors").
public struct ConvertErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let unsupportedVersion = Self(rawValue: 0)
    public static let malformedMessage = Self(rawValue: 1)
    public static let unsupportedMessage = Self(rawValue: 2)
    public static let missingCookie = Self(rawValue: 3)
    public static let notAuthorized = Self(rawValue: 32)
    public static let unsupportedTCPOption = Self(rawValue: 33)
    public static let resourceExceeded = Self(rawValue: 64)
    public static let networkFailure = Self(rawValue: 65)
    public static let connectionReset = Self(rawValue: 96)
    public static let destinationUnreachable = Self(rawValue: 97)

    public var description: String {
        switch self {
        case .unsupportedVersion: return "unsupported version"
        case .malformedMessage: return "malformed message"
        case .unsupportedMessage: return "unsupported message"
        case .missingCookie: return "missing cookie"
        case .notAuthorized: return "not authorized"
        case .unsupportedTCPOption: return "unsupported TCP option"
        case .resourceExceeded: return "resource exceeded"
        case .networkFailure: return "network failure"
        case .connectionReset: return "connection reset"
        case .destinationUnreachable: return "destination unreachable"
        default: return "error \(rawValue)"
        }
    }
}

/// The one error type of BraidWire: which RFC 8803 code applies and a human-readable reason.
public struct ConvertError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: ConvertErrorCode
    public var reason: String

    public init(_ code: ConvertErrorCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
}
