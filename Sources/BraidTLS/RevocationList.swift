import COpenSSL

/// A CRL read from its file, to ask which certificates it revokes. The TLS context checks new
/// handshakes itself; this is for connections already up when a reload brings a new CRL, which
/// OpenSSL never looks at again.
public final class RevocationList: @unchecked Sendable {
    private let crl: OpaquePointer

    /// Reads `path` and checks it as the TLS context does at start (signed by the CA in `ca`,
    /// not past its nextUpdate); errors name the file.
    public init(path: String, ca: String) throws {
        let crl = try readCRL(path, reason: .configuration)
        do {
            try TLSContext.checkUsable(crl: crl, path: path, caPath: ca)
        } catch {
            X509_CRL_free(crl)
            throw error
        }
        self.crl = crl
    }

    deinit { X509_CRL_free(crl) }

    /// Whether the certificate with this serial (upper-case hex, as `TLSHandshakeCompleted`
    /// and `braid pki` show it) is revoked.
    public func revokes(serial: String) -> Bool {
        var bn: OpaquePointer? = nil
        guard BN_hex2bn(&bn, serial) > 0, let bn else { return false }
        defer { BN_free(bn) }
        guard let asn1 = BN_to_ASN1_INTEGER(bn, nil) else { return false }
        defer { ASN1_INTEGER_free(asn1) }
        var entry: OpaquePointer? = nil
        return X509_CRL_get0_by_serial(crl, &entry, asn1) == 1
    }
}
