import COpenSSL

/// Every failure of the control channel's TLS and of the PKI: one reason an operator can act on
/// (the word that goes into the log line) and the detail OpenSSL gave.
public struct TLSError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Why a handshake or a PKI operation failed. The raw value is what the log shows.
    public enum Reason: String, Sendable {
        /// The certificate's notAfter has passed.
        case expiredCertificate = "expired certificate"
        /// The certificate's notBefore is still ahead (or the clock is wrong).
        case notYetValid = "certificate not yet valid"
        /// The certificate was not issued by the configured CA.
        case unknownCA = "unknown CA"
        /// The certificate's serial is in the CRL.
        case revoked = "revoked"
        /// The concentrator's certificate does not carry the name the gateway expects.
        case nameMismatch = "name mismatch"
        /// The peer did not send a certificate although one is required.
        case noPeerCertificate = "no peer certificate"
        /// The CRL could not be used (missing for the issuer, or past its nextUpdate).
        case crlUnusable = "CRL unusable"
        /// Any other certificate problem; the detail names it.
        case badCertificate = "bad certificate"
        /// The bytes received are not a TLS record: plaintext on the TLS port.
        case notTLS = "not TLS"
        /// The peer offered no TLS 1.3.
        case protocolVersion = "protocol version"
        /// The handshake did not finish within the handler's time limit.
        case handshakeTimeout = "handshake timeout"
        /// The connection closed before the handshake finished.
        case closedDuringHandshake = "closed during handshake"
        /// Any other failure of the TLS protocol; the detail names it.
        case protocolFailure = "protocol failure"
        /// A certificate, key or CRL file could not be read or used.
        case configuration = "configuration"
        /// A PKI operation was refused or failed.
        case pki = "pki"
    }

    public var reason: Reason
    /// What exactly happened: the file, the name, OpenSSL's own words.
    public var detail: String

    public init(_ reason: Reason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { detail.isEmpty ? reason.rawValue : "\(reason.rawValue): \(detail)" }

    /// A configuration or PKI error carrying OpenSSL's queued errors (which it drains), so the
    /// message says what OpenSSL objected to, not only which call failed.
    static func openSSL(_ reason: Reason, _ what: String) -> TLSError {
        let queued = drainOpenSSLErrors()
        return TLSError(reason, queued.isEmpty ? what : "\(what) (\(queued.joined(separator: "; ")))")
    }
}

/// Empties OpenSSL's per-thread error queue and returns its entries as readable strings.
/// The queue must be empty before each SSL call whose result is read with SSL_get_error.
@discardableResult
func drainOpenSSLErrors() -> [String] {
    var out: [String] = []
    while true {
        let e = ERR_get_error()
        if e == 0 { break }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(e, &buf, buf.count)
        out.append(String(cString: buf))
    }
    return out
}
