import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

extension PKI {
    /// Creates a CA in `directory` (made if missing, mode 0700 since it holds the CA key): a new
    /// P-256 key, a self-signed certificate valid for `days` days, an empty index and an empty
    /// CRL, so the concentrator can name `option crl` before anything was revoked. Refuses a
    /// directory that already holds a CA key.
    @discardableResult
    public static func initialize(
        directory: String, commonName: String = "braid operator CA", days: Int = PKI.defaultCADays
    ) throws -> PKI {
        guard days > 0 else { throw TLSError(.pki, "validity must be at least one day (\(days))") }
        let pki = PKI(uncheckedDirectory: directory)
        try makeDirectory(directory, mode: 0o700)
        if access(pki.caKeyPath, F_OK) == 0 {
            throw TLSError(.pki, "\(pki.caKeyPath) already exists: \(directory) already holds a CA")
        }
        let key = try generateKey()
        defer { EVP_PKEY_free(key) }
        let now = time(nil)
        let cert = try buildCertificate(
            commonName: commonName, publicKey: key, issuer: nil, signingKey: key,
            notBefore: now - PKI.backdate, notAfter: now + time_t(days) * 86400,
            extensions: [
                (NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
                (NID_key_usage, "critical,keyCertSign,cRLSign"),
                (NID_subject_key_identifier, "hash"),
            ])
        defer { X509_free(cert) }
        let keyPEM = try pemBytes("CA key") { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        let certPEM = try pemBytes("CA certificate") { PEM_write_bio_X509($0, cert) }
        try writeFile(pki.caKeyPath, keyPEM, mode: 0o600, replace: false)
        try writeFile(pki.caCertificatePath, certPEM, mode: 0o644, replace: true)
        try makeDirectory(pki.issuedDirectory, mode: 0o755)
        try pki.writeIndex([])
        try pki.writeCRL(days: PKI.defaultCRLDays)
        return pki
    }
}
