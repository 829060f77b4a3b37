import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

/// An OpenSSL SSL_CTX for one side of the control channel: TLS 1.3 only, a certificate and key
/// of our own, and the peer's certificate required and verified against the operator's CA (and
/// its CRL when one is given). The gateway is the client and also checks the concentrator's
/// name; the concentrator is the server and learns the subscriber id from the client's CN.
///
/// Immutable once built, so one context serves every connection on every thread; a new CRL or
/// certificate takes effect with a new context (a reload), for the connections made after it.
public final class TLSContext: @unchecked Sendable {
    /// Which end of the channel this context is for.
    public enum Role: Sendable, Equatable {
        /// The gateway: `serverName` is the concentrator's name, checked against its certificate
        /// (subjectAltName DNS) and sent as SNI.
        case client(serverName: String)
        /// The concentrator.
        case server
    }

    public let role: Role
    let ctx: OpaquePointer

    /// Builds a context from PEM files: `ca` (`option ca`), `certificate` and `key` (`option cert`,
    /// `option key`) and, optionally, `crl` (`option crl`), whose revocations are then checked
    /// for the peer's certificate. Errors name the file and OpenSSL's reason.
    public init(role: Role, ca: String, certificate: String, key: String, crl: String? = nil) throws {
        drainOpenSSLErrors()
        let isServer = role == .server
        guard let ctx = SSL_CTX_new(isServer ? TLS_server_method() : TLS_client_method()) else {
            throw TLSError.openSSL(.configuration, "SSL_CTX_new failed")
        }
        self.ctx = ctx
        self.role = role
        // From here a throw frees ctx in deinit.
        guard braid_ssl_ctx_set_tls13_only(ctx) == 1 else {
            throw TLSError.openSSL(.configuration, "cannot restrict the context to TLS 1.3")
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, certificate) == 1 else {
            throw TLSError.openSSL(.configuration, "\(certificate): cannot use as certificate")
        }
        let privateKey = try readPrivateKey(key, reason: .configuration)
        defer { EVP_PKEY_free(privateKey) }
        guard SSL_CTX_use_PrivateKey(ctx, privateKey) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError.openSSL(.configuration, "\(key) is not the key of \(certificate)")
        }
        // Only the operator's CA: the system's trust store must never admit a peer.
        let caCert = try readCertificate(ca, reason: .configuration)
        X509_free(caCert)
        guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1 else {
            throw TLSError.openSSL(.configuration, "\(ca): cannot load as CA")
        }
        if isServer {
            // Tell the client which CA we accept, so a client holding several picks the right one.
            if let names = SSL_load_client_CA_file(ca) { SSL_CTX_set_client_CA_list(ctx, names) }
            // No resumption: every connection proves its certificate again, so a revocation
            // takes effect on the next connection, and no ticket key needs managing.
            _ = SSL_CTX_set_num_tickets(ctx, 0)
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, recordRefusedCertificate)

        let store = SSL_CTX_get_cert_store(ctx)
        if let crl {
            let list = try readCRL(crl, reason: .configuration)
            defer { X509_CRL_free(list) }
            try Self.checkUsable(crl: list, path: crl, caPath: ca)
            guard X509_STORE_add_crl(store, list) == 1 else {
                throw TLSError.openSSL(.configuration, "\(crl): cannot add the CRL")
            }
            // The leaf only: the CA is the root and has no CRL above it.
            guard X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK)) == 1 else {
                throw TLSError.openSSL(.configuration, "\(crl): cannot turn on CRL checking")
            }
        }
        if case .client(let serverName) = role {
            do {
                try PKI.validate(name: serverName)
            } catch let error as TLSError {
                throw TLSError(.configuration, "server name: \(error.detail)")
            }
            let param = SSL_CTX_get0_param(ctx)
            X509_VERIFY_PARAM_set_hostflags(param, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            guard X509_VERIFY_PARAM_set1_host(param, serverName, 0) == 1 else {
                throw TLSError.openSSL(.configuration, "cannot expect the server name \(serverName)")
            }
        }
        drainOpenSSLErrors()
    }

    deinit {
        SSL_CTX_free(ctx)
    }

    /// A CRL that is not signed by the CA, or past its nextUpdate, would make OpenSSL refuse
    /// every peer (no usable CRL for the issuer); say so once at start, naming the file and the
    /// date, rather than in every refused handshake.
    static func checkUsable(crl: OpaquePointer, path: String, caPath: String) throws {
        let ca = try readCertificate(caPath, reason: .configuration)
        defer { X509_free(ca) }
        guard X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1 else {
            throw TLSError.openSSL(.crlUnusable, "\(path) is not signed by the CA in \(caPath)")
        }
        if let next = unixTime(X509_CRL_get0_nextUpdate(crl)), next <= Int64(time(nil)) {
            throw TLSError(
                .crlUnusable,
                "\(path) expired at \(utcDate(next)): re-sign it with `braid pki crl` and copy it again")
        }
    }
}
