import COpenSSL

/// One TLS connection without I/O: an OpenSSL SSL between two memory BIOs. Ciphertext from the
/// peer goes in with `receive`, plaintext comes out of it; plaintext to send goes in with `send`,
/// and whatever must go on the wire (handshake messages, records, alerts, close_notify) is taken
/// with `takeOutbound`. The caller moves the bytes and keeps the time, so the engine is tested
/// against another engine in memory and driven by a NIO handler in the service.
///
/// A failure is thrown once as a `TLSError` whose reason comes from the certificate check or the
/// peer's alert, and leaves the engine `failed`; the alert OpenSSL queued for the peer is still
/// in `takeOutbound`, so the peer learns why too.
///
/// In TLS 1.3 the client finishes its handshake before the server has checked the client's
/// certificate; a refusal reaches the client afterwards, as an alert thrown by `receive`.
public final class TLSEngine {
    /// Where the connection is.
    public enum State: Equatable {
        case handshaking
        case established
        /// Both directions are closed (close_notify sent and received), or the engine was closed
        /// during the handshake.
        case closed
        case failed(TLSError)
    }

    /// What one `receive` produced.
    public struct Received: Equatable {
        /// The handshake finished with this input (reported once).
        public var handshakeCompleted = false
        /// Application data from the peer.
        public var plaintext: [UInt8] = []
        /// The peer sent close_notify.
        public var closedByPeer = false
    }

    public private(set) var state: State = .handshaking
    /// Our close_notify has been queued: nothing more can be sent, but the peer's remaining data
    /// is still read (TLS 1.3 closes each direction on its own, RFC 8446 §6.1).
    public private(set) var outputClosed = false
    /// The peer's close_notify has arrived: nothing more will be read, but we may still send.
    public private(set) var inputClosed = false
    public let context: TLSContext
    private let ssl: OpaquePointer
    private let inbound: OpaquePointer
    private let outbound: OpaquePointer
    /// Plaintext given before the handshake finished; sent as soon as it does.
    private var pendingPlaintext: [UInt8] = []
    private var checkedRecordHeader = false

    /// A new connection for `context`'s role. Nothing is sent until `start()`.
    public init(context: TLSContext) throws {
        drainOpenSSLErrors()
        guard let ssl = SSL_new(context.ctx) else { throw TLSError.openSSL(.configuration, "SSL_new failed") }
        guard let inbound = BIO_new(BIO_s_mem()), let outbound = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.openSSL(.configuration, "BIO_new failed")
        }
        // An empty inbound BIO means "wait for more", not end of file.
        BIO_ctrl(inbound, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, nil)
        SSL_set_bio(ssl, inbound, outbound)  // the SSL owns both BIOs from here
        self.ssl = ssl
        self.inbound = inbound
        self.outbound = outbound
        self.context = context
        // The verify callback finds the engine here (index 0 is OpenSSL's "app data"); unretained
        // because the engine owns the SSL and outlives every call into it.
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
        if case .client(let serverName) = context.role {
            _ = braid_ssl_set_server_name(ssl, serverName)
            SSL_set_connect_state(ssl)
        } else {
            SSL_set_accept_state(ssl)
        }
    }

    deinit {
        SSL_free(ssl)
    }

    public var isServer: Bool { context.role == .server }

    /// The peer certificate's commonName once the handshake has finished: the subscriber id on
    /// the concentrator, the concentrator's name on the gateway.
    public var peerCommonName: String? {
        guard state == .established || state == .closed, let cert = SSL_get0_peer_certificate(ssl) else {
            return nil
        }
        return commonName(of: cert)
    }

    /// The peer certificate's serial (upper-case hex) once the handshake has finished, so a CRL
    /// loaded later can be checked against a connection that is already up.
    public var peerSerial: String? {
        guard state == .established || state == .closed, let cert = SSL_get0_peer_certificate(ssl) else {
            return nil
        }
        return serialHex(of: cert)
    }

    /// Starts the handshake: the client's ClientHello becomes outbound bytes; a server waits
    /// for the peer.
    public func start() throws {
        guard state == .handshaking, !isServer else { return }
        try driveHandshake(into: nil)
    }

    /// Feeds ciphertext received from the peer and returns what came of it.
    public func receive(_ ciphertext: UnsafeRawBufferPointer) throws -> Received {
        var result = Received()
        switch state {
        case .failed(let error): throw error
        case .closed: return result
        case _ where inputClosed: return result
        case .handshaking, .established: break
        }
        if !checkedRecordHeader && !ciphertext.isEmpty {
            try checkRecordHeader(ciphertext)
        }
        var offset = 0
        while offset < ciphertext.count {
            let n = BIO_write(inbound, ciphertext.baseAddress! + offset, Int32(ciphertext.count - offset))
            guard n > 0 else { throw fail(TLSError.openSSL(.protocolFailure, "cannot buffer received bytes")) }
            offset += Int(n)
        }
        if state == .handshaking {
            try driveHandshake(into: &result)
        }
        if state == .established {
            try readPlaintext(into: &result)
        }
        return result
    }

    /// Convenience for tests and callers holding an array.
    public func receive(_ ciphertext: [UInt8]) throws -> Received {
        try ciphertext.withUnsafeBytes { try receive($0) }
    }

    /// Queues plaintext for the peer. Before the handshake has finished it is held and sent
    /// right after.
    public func send(_ plaintext: UnsafeRawBufferPointer) throws {
        switch state {
        case .failed(let error): throw error
        case .closed: throw TLSError(.protocolFailure, "cannot send on a closed connection")
        case _ where outputClosed: throw TLSError(.protocolFailure, "cannot send after close_notify")
        case .handshaking: pendingPlaintext.append(contentsOf: plaintext)
        case .established: try write(plaintext)
        }
    }

    public func send(_ plaintext: [UInt8]) throws {
        try plaintext.withUnsafeBytes { try send($0) }
    }

    /// Whether bytes wait to go to the peer.
    public var hasOutbound: Bool { BIO_ctrl_pending(outbound) > 0 }

    /// Takes every byte waiting to go to the peer.
    public func takeOutbound() -> [UInt8] {
        let pending = Int(BIO_ctrl_pending(outbound))
        guard pending > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: pending)
        let n = bytes.withUnsafeMutableBytes { BIO_read(outbound, $0.baseAddress, Int32(pending)) }
        return n > 0 ? Array(bytes[0..<Int(n)]) : []
    }

    /// Queues close_notify (taken with `takeOutbound`); nothing more can be sent, what the peer
    /// still sends is read. During the handshake there is nothing to close politely: the engine
    /// is simply closed.
    public func close() {
        switch state {
        case .handshaking:
            state = .closed
        case .established where !outputClosed:
            outputClosed = true
            drainOpenSSLErrors()
            _ = SSL_shutdown(ssl)
            drainOpenSSLErrors()
            if inputClosed { state = .closed }
        default:
            break
        }
    }

    /// Marks the engine failed with a reason found outside it (a timeout, a lost connection).
    public func abort(_ error: TLSError) {
        if case .failed = state { return }
        state = .failed(error)
    }

    // MARK: - Driving OpenSSL

    private func driveHandshake(into result: UnsafeMutablePointer<Received>?) throws {
        drainOpenSSLErrors()
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            state = .established
            result?.pointee.handshakeCompleted = true
            if !pendingPlaintext.isEmpty {
                let held = pendingPlaintext
                pendingPlaintext = []
                try held.withUnsafeBytes { try write($0) }
            }
            return
        }
        let code = SSL_get_error(ssl, r)
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE { return }
        throw fail(classify(code))
    }

    private func driveHandshake(into result: inout Received) throws {
        try withUnsafeMutablePointer(to: &result) { try driveHandshake(into: $0) }
    }

    private func readPlaintext(into result: inout Received) throws {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            drainOpenSSLErrors()
            var n = 0
            let r = buffer.withUnsafeMutableBytes { SSL_read_ex(ssl, $0.baseAddress, $0.count, &n) }
            if r == 1 {
                result.plaintext += buffer[0..<n]
                continue
            }
            let code = SSL_get_error(ssl, r)
            if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE { return }
            if code == SSL_ERROR_ZERO_RETURN {
                result.closedByPeer = true
                inputClosed = true
                if outputClosed { state = .closed }
                return
            }
            throw fail(classify(code))
        }
    }

    private func write(_ plaintext: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < plaintext.count {
            drainOpenSSLErrors()
            var n = 0
            let r = SSL_write_ex(ssl, plaintext.baseAddress! + offset, plaintext.count - offset, &n)
            guard r == 1 else { throw fail(classify(SSL_get_error(ssl, r))) }
            offset += n
        }
    }

    private func fail(_ error: TLSError) -> TLSError {
        state = .failed(error)
        return error
    }

    /// A TLS record starts with its content type (22 handshake, 21 alert) and the major version
    /// 3 (RFC 8446 §5.1). Anything else is someone speaking another protocol to the TLS port,
    /// which OpenSSL would only call a bad record length or version.
    private func checkRecordHeader(_ bytes: UnsafeRawBufferPointer) throws {
        checkedRecordHeader = true
        let allowedTypes: [UInt8] = isServer ? [22] : [22, 21]
        if allowedTypes.contains(bytes[0]) && (bytes.count < 2 || bytes[1] == 3) { return }
        let shown = bytes.prefix(16).map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : "." }.joined()
        throw fail(TLSError(.notTLS, "first bytes from the peer are not a TLS record (\"\(shown)\")"))
    }

    /// Turns a failed SSL call into the reason an operator can act on: our own check of the
    /// peer's certificate first, then an alert the peer sent about ours, then OpenSSL's words.
    private func classify(_ code: Int32) -> TLSError {
        var queue: [(lib: Int32, reason: Int32, text: String)] = []
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(e, &buf, buf.count)
            queue.append((braid_err_lib(e), braid_err_reason(e), String(cString: buf)))
        }
        let verify = Int32(SSL_get_verify_result(ssl))
        if verify != X509_V_OK {
            return Self.verifyError(verify, peer: peerName())
        }
        for entry in queue where entry.lib == ERR_LIB_SSL {
            if entry.reason >= SSL_AD_REASON_OFFSET {
                return Self.alertError(entry.reason - SSL_AD_REASON_OFFSET)
            }
            switch entry.reason {
            case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
                return TLSError(.noPeerCertificate, "the peer sent no certificate")
            case SSL_R_WRONG_VERSION_NUMBER, SSL_R_HTTP_REQUEST, SSL_R_HTTPS_PROXY_REQUEST,
                SSL_R_PACKET_LENGTH_TOO_LONG:
                return TLSError(.notTLS, entry.text)
            case SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_NO_PROTOCOLS_AVAILABLE:
                return TLSError(.protocolVersion, entry.text)
            default:
                continue
            }
        }
        let texts = queue.map(\.text).joined(separator: "; ")
        return TLSError(.protocolFailure, texts.isEmpty ? "SSL error \(code)" : texts)
    }

    /// The certificate the verification refused, described by the verify callback (OpenSSL
    /// keeps no peer certificate after a failed handshake, and the log must say whose it was).
    fileprivate var refusedCertificate: String?

    /// The name in the peer's certificate, for messages; the handshake may have failed.
    private func peerName() -> String {
        if let refusedCertificate { return refusedCertificate }
        guard let cert = SSL_get0_peer_certificate(ssl) else { return "the peer's certificate" }
        return describe(cert)
    }

    static func verifyError(_ verify: Int32, peer: String) -> TLSError {
        let text = "\(peer): \(String(cString: X509_verify_cert_error_string(Int(verify)))) (verify error \(verify))"
        switch verify {
        case X509_V_ERR_CERT_HAS_EXPIRED: return TLSError(.expiredCertificate, text)
        case X509_V_ERR_CERT_NOT_YET_VALID: return TLSError(.notYetValid, text)
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
            X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
            X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_CERT_SIGNATURE_FAILURE:
            return TLSError(.unknownCA, text)
        case X509_V_ERR_CERT_REVOKED: return TLSError(.revoked, text)
        case X509_V_ERR_HOSTNAME_MISMATCH: return TLSError(.nameMismatch, text)
        case X509_V_ERR_UNABLE_TO_GET_CRL, X509_V_ERR_CRL_HAS_EXPIRED, X509_V_ERR_CRL_NOT_YET_VALID,
            X509_V_ERR_CRL_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
            return TLSError(.crlUnusable, text)
        default: return TLSError(.badCertificate, text)
        }
    }

    /// A fatal alert from the peer: in this channel almost always its verdict on our certificate.
    static func alertError(_ alert: Int32) -> TLSError {
        let text = "the peer sent alert \(alert) (\(String(cString: SSL_alert_desc_string_long(alert))))"
        switch alert {
        case SSL_AD_CERTIFICATE_EXPIRED: return TLSError(.expiredCertificate, text)
        case SSL_AD_UNKNOWN_CA: return TLSError(.unknownCA, text)
        case SSL_AD_CERTIFICATE_REVOKED: return TLSError(.revoked, text)
        case SSL_AD_CERTIFICATE_REQUIRED: return TLSError(.noPeerCertificate, text)
        case SSL_AD_PROTOCOL_VERSION: return TLSError(.protocolVersion, text)
        case SSL_AD_BAD_CERTIFICATE, SSL_AD_UNSUPPORTED_CERTIFICATE, SSL_AD_CERTIFICATE_UNKNOWN:
            return TLSError(.badCertificate, text)
        default: return TLSError(.protocolFailure, text)
        }
    }
}

/// "certificate of NAME (serial HEX)".
func describe(_ cert: OpaquePointer) -> String {
    "certificate of \(commonName(of: cert) ?? "?") (serial \(serialHex(of: cert)))"
}

/// OpenSSL's verify callback: keeps OpenSSL's verdict and only notes which certificate of the
/// chain it refused first, for the error message.
let recordRefusedCertificate: @convention(c) (Int32, OpaquePointer?) -> Int32 = { ok, store in
    guard ok == 0, let store, let cert = X509_STORE_CTX_get_current_cert(store),
        let ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
        let engine = SSL_get_ex_data(OpaquePointer(ssl), 0)
    else { return ok }
    let owner = Unmanaged<TLSEngine>.fromOpaque(engine).takeUnretainedValue()
    if owner.refusedCertificate == nil { owner.refusedCertificate = describe(cert) }
    return ok
}
