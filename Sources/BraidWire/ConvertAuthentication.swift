import BraidCore
import COpenSSL

/// braid's private-use TLV (type 192, RFC 8803 §5.2 allows 192-255 for private use) that proves a
/// data connection comes from a subscriber holding the key, without an extra round trip.
///
///     +-------+-------+-------+-------+
///     | 192   | 16    | flags | rsvd  |
///     +-------+-------+-------+-------+
///     |            key id             |   0 = the pre-shared key
///     +-------------------------------+
///     |    timestamp (ms since 1970)  |   8 bytes
///     +-------------------------------+
///     |            nonce              |  16 bytes
///     +-------------------------------+
///     |   HMAC-SHA256 (32 bytes)      |  see `ConvertAuthenticator.macInput`
///     +-------------------------------+
public struct ConvertAuthentication: Equatable, Sendable {
    public static let nonceSize = 16
    public static let macSize = 32
    /// Value bytes after the TLV's Type and Length.
    static let valueSize = 2 + 4 + 8 + nonceSize + macSize
    /// Offset of the MAC from the start of the TLV (Type byte).
    static let macOffsetInTLV = 2 + valueSize - macSize

    public var keyID: UInt32
    public var timestampMillis: UInt64
    public var nonce: [UInt8]
    public var mac: [UInt8]

    public init(keyID: UInt32, timestampMillis: UInt64, nonce: [UInt8], mac: [UInt8]) {
        self.keyID = keyID
        self.timestampMillis = timestampMillis
        self.nonce = nonce
        self.mac = mac
    }

    init(value v: [UInt8]) throws {
        // The encoder pads to a word boundary; 62 bytes of value pad to 64 - 2 = 62, no padding.
        guard v.count == Self.valueSize else {
            throw ConvertError(
                .malformedMessage, "authentication TLV of \(v.count + 2) bytes, expected \(Self.valueSize + 2)")
        }
        keyID = v[2..<6].reduce(0) { $0 << 8 | UInt32($1) }
        timestampMillis = v[6..<14].reduce(0) { $0 << 8 | UInt64($1) }
        nonce = Array(v[14..<30])
        mac = Array(v[30..<62])
    }

    func encodeValue() -> [UInt8] {
        var out: [UInt8] = [0, 0]
        for i in (0..<4).reversed() { out.append(UInt8((keyID >> (8 * UInt32(i))) & 0xff)) }
        for i in (0..<8).reversed() { out.append(UInt8((timestampMillis >> (8 * UInt64(i))) & 0xff)) }
        out += nonce.count == Self.nonceSize ? nonce : [UInt8](repeating: 0, count: Self.nonceSize)
        out += mac.count == Self.macSize ? mac : [UInt8](repeating: 0, count: Self.macSize)
        return out
    }
}

/// Seals and checks the authentication TLV with one key, for one concentrator identity. Time is
/// passed in, never read here.
///
/// The MAC covers a label, the identity of the concentrator the request is meant for, and the
/// whole Convert message with the MAC field zeroed (see `macInput`). The identity is not sent:
/// both ends know it (the gateway's `server_name`, one of the concentrator's names). So a request
/// captured on the way to one concentrator fails the MAC at another that shares the key.
public struct ConvertAuthenticator: Sendable {
    public let key: [UInt8]
    public let keyID: UInt32
    /// The name of the concentrator the MAC is bound to; at most 255 bytes of UTF-8.
    public let identity: String

    public init(key: [UInt8], keyID: UInt32 = 0, identity: String = "") {
        precondition(identity.utf8.count <= 255, "identity longer than 255 bytes: \(identity)")
        self.key = key
        self.keyID = keyID
        self.identity = identity
    }

    /// Domain separation: a MAC of this format cannot be mistaken for one over other bytes
    /// (version 1, the bare message, had no label and no identity).
    static let macLabel = Array("braid convert auth v2".utf8)

    /// What the HMAC is computed over: label, identity length (1 byte), identity, then the
    /// message with its MAC field zeroed.
    public static func macInput(identity: String, message: [UInt8]) -> [UInt8] {
        let name = Array(identity.utf8)
        return macLabel + [UInt8(name.count)] + name + message
    }

    /// Builds an authenticated request: `tlvs` (a Connect TLV, perhaps Info) plus the
    /// authentication TLV, which is last so a reader can stop at the first unexpected TLV.
    public func seal(_ tlvs: [ConvertTLV], nowMillis: UInt64, nonce: [UInt8]) throws -> [UInt8] {
        precondition(nonce.count == ConvertAuthentication.nonceSize)
        let auth = ConvertAuthentication(
            keyID: keyID, timestampMillis: nowMillis, nonce: nonce,
            mac: [UInt8](repeating: 0, count: ConvertAuthentication.macSize))
        var bytes = try ConvertMessage(tlvs + [.authentication(auth)]).encode()
        let macStart = bytes.count - 4 * 16 + ConvertAuthentication.macOffsetInTLV
        let mac = Self.hmac(key: key, Self.macInput(identity: identity, message: bytes))
        bytes.replaceSubrange(macStart..<(macStart + mac.count), with: mac)
        return bytes
    }

    /// Checks the MAC of `raw`, the exact bytes of a parsed message. Throws `.notAuthorized`.
    public func verify(raw: [UInt8]) throws -> ConvertAuthentication {
        try Self.verify(raw: raw, key: key, keyID: keyID, identities: [identity])
    }

    /// Checks the MAC of `raw` under `key` for any of `identities` (a concentrator known by
    /// several names: its address, its certificate's name, configured ones). Throws `.notAuthorized`.
    public static func verify(
        raw: [UInt8], key: [UInt8], keyID: UInt32, identities: [String]
    ) throws -> ConvertAuthentication {
        guard let (offset, auth) = findAuthentication(raw) else {
            throw ConvertError(.notAuthorized, "no authentication TLV")
        }
        guard auth.keyID == keyID else {
            throw ConvertError(.notAuthorized, "unknown key id \(auth.keyID)")
        }
        var zeroed = raw
        let macStart = offset + ConvertAuthentication.macOffsetInTLV
        for i in macStart..<(macStart + ConvertAuthentication.macSize) { zeroed[i] = 0 }
        for identity in identities where identity.utf8.count <= 255 {
            let expected = hmac(key: key, macInput(identity: identity, message: zeroed))
            let equal = expected.withUnsafeBytes { e in
                auth.mac.withUnsafeBytes { m in CRYPTO_memcmp(e.baseAddress, m.baseAddress, e.count) == 0 }
            }
            if equal { return auth }
        }
        throw ConvertError(.notAuthorized, "bad MAC")
    }

    /// Walks the TLVs of a well-formed message to find the authentication TLV's byte offset.
    static func findAuthentication(_ raw: [UInt8]) -> (Int, ConvertAuthentication)? {
        guard raw.count >= 4 else { return nil }
        let total = min(Int(raw[1]) * 4, raw.count)
        var offset = 4
        while offset + 2 <= total {
            let length = Int(raw[offset + 1]) * 4
            guard length >= 4, offset + length <= total else { return nil }
            if raw[offset] == ConvertTLV.authenticationType,
                let auth = try? ConvertAuthentication(value: Array(raw[(offset + 2)..<(offset + length)]))
            {
                return (offset, auth)
            }
            offset += length
        }
        return nil
    }

    /// HMAC-SHA256 from libcrypto.
    public static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var outLength: UInt32 = 0
        key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                _ = HMAC(
                    EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    d.count, &out, &outLength)
            }
        }
        return Array(out.prefix(Int(outLength)))
    }
}

/// Cryptographically strong random bytes (nonces, keys).
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBytes { RAND_bytes($0.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(count)) }
        precondition(ok == 1, "RAND_bytes failed: the system has no entropy source")
        return out
    }
}
