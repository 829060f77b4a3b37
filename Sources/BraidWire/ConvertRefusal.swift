/// Why the concentrator refused a data connection before it proved who it is: for the log and the
/// counters only. The client is told none of it. Whatever was wrong, it gets the one answer
/// `ConvertServerHandshake.unauthenticatedReply`, so probing cannot learn which check failed
/// (whether a key id exists, whether a MAC was nearly right, whether a nonce was seen).
public enum ConvertRefusal: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    /// Not a well-formed request: bad lengths, TLVs a request may not carry, TCP options.
    case malformed
    /// A Convert version other than 1, or not Convert at all (the first byte of "GET ").
    case unsupportedVersion = "version"
    /// The stream ended before a whole request arrived.
    case truncated
    /// A well-formed request without the authentication TLV.
    case noAuthentication = "no_auth"
    /// The authentication TLV names a key id the concentrator does not have (or no longer has).
    case unknownKey = "unknown_key"
    /// The MAC does not match the message under the named key.
    case badMAC = "bad_mac"
    /// A good MAC on a timestamp outside the freshness window.
    case stale
    /// A good MAC on a timestamp older than the concentrator process: perhaps captured before a
    /// restart emptied the replay cache, so never accepted, even inside the window.
    case beforeStart = "before_start"
    /// A good, fresh MAC whose nonce was seen before.
    case replayed
    /// A good, fresh MAC that the replay cache had no room to remember.
    case replayCacheFull = "replay_cache_full"

    public var description: String { rawValue }
}

/// A refusal on its way out of `ConvertServerHandshake.feed`: the error for the log, the reason
/// for the counters.
struct ConvertRefused: Error {
    var reason: ConvertRefusal
    var error: ConvertError

    init(_ reason: ConvertRefusal, _ error: ConvertError) {
        self.reason = reason
        self.error = error
    }
}

extension ConvertServerHandshake {
    /// The one answer to every request that is not a valid, fresh, never-seen authenticated
    /// request: an RFC 8803 Not Authorized Error TLV (§5.2.6, code 32), 8 bytes. A real gateway
    /// whose clock drifted or whose key was rotated away learns why it is refused; anyone else
    /// learns only that the port speaks Convert, which the port number already says.
    public static let unauthenticatedReply: [UInt8] = errorReply(.notAuthorized)
}
