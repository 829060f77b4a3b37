import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

extension PKI {
    /// What a certificate is for. The extended key usage makes each usable on its side only: a
    /// gateway's certificate cannot pose as a concentrator, nor the other way round.
    public enum Usage: Sendable {
        /// A concentrator: serverAuth, and NAME as a DNS subjectAltName for the gateway's check.
        case server
        /// A gateway (CPE): clientAuth; NAME is the subscriber id.
        case client
    }

    /// The files written for one certificate.
    public struct Issued: Sendable {
        public var name: String
        public var serial: String
        public var certificatePath: String
        public var keyPath: String
    }

    /// Issues a certificate and a new key for NAME, valid from an hour ago for `days` days.
    @discardableResult
    public func issue(name: String, usage: Usage, days: Int = PKI.defaultCertificateDays, force: Bool = false) throws
        -> Issued
    {
        guard days > 0 else { throw TLSError(.pki, "validity must be at least one day (\(days))") }
        let now = time(nil)
        return try issue(
            name: name, usage: usage, notBefore: now - PKI.backdate, notAfter: now + time_t(days) * 86400,
            force: force)
    }

    /// Issues a certificate with an explicit validity window (seconds since 1970); tests use it to
    /// make certificates that have already expired.
    @discardableResult
    public func issue(name: String, usage: Usage, notBefore: time_t, notAfter: time_t, force: Bool = false) throws
        -> Issued
    {
        try PKI.validate(name: name)
        guard notAfter > notBefore else {
            throw TLSError(.pki, "notAfter (\(notAfter)) must be after notBefore (\(notBefore))")
        }
        return try locked {
            try issueLocked(name: name, usage: usage, notBefore: notBefore, notAfter: notAfter, force: force)
        }
    }

    private func issueLocked(name: String, usage: Usage, notBefore: time_t, notAfter: time_t, force: Bool) throws
        -> Issued
    {
        let certPath = certificatePath(for: name)
        let keyPath = keyPath(for: name)
        if !force {
            for path in [certPath, keyPath] where access(path, F_OK) == 0 {
                throw TLSError(.pki, "\(path) already exists: \(name) was issued before (--force replaces it)")
            }
        }
        let caCert = try readCertificate(caCertificatePath, reason: .pki)
        defer { X509_free(caCert) }
        let caKey = try readPrivateKey(caKeyPath, reason: .pki)
        defer { EVP_PKEY_free(caKey) }

        let key = try generateKey()
        defer { EVP_PKEY_free(key) }
        var extensions: [(Int32, String)] = [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature"),
            (NID_ext_key_usage, usage == .server ? "serverAuth" : "clientAuth"),
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ]
        if usage == .server { extensions.append((NID_subject_alt_name, "DNS:\(name)")) }
        let cert = try buildCertificate(
            commonName: name, publicKey: key, issuer: caCert, signingKey: caKey,
            notBefore: notBefore, notAfter: notAfter, extensions: extensions)
        defer { X509_free(cert) }

        try makeDirectory(issuedDirectory, mode: 0o755)
        let keyPEM = try pemBytes("private key") { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        let certPEM = try pemBytes("certificate") { PEM_write_bio_X509($0, cert) }
        // The key first: a certificate without its key is useless, a key without its
        // certificate is harmless and replaced by the next attempt.
        try writeFile(keyPath, keyPEM, mode: 0o600, replace: force)
        try writeFile(certPath, certPEM, mode: 0o644, replace: force)

        let serial = serialHex(of: cert)
        var index = try readIndex()
        index.append(IndexEntry(serial: serial, name: name, notAfter: Int64(notAfter), revokedAt: nil))
        try writeIndex(index)
        return Issued(name: name, serial: serial, certificatePath: certPath, keyPath: keyPath)
    }
}

/// A fresh EC P-256 key.
func generateKey() throws -> OpaquePointer {
    drainOpenSSLErrors()
    guard let key = braid_generate_p256_key() else { throw TLSError.openSSL(.pki, "cannot generate a P-256 key") }
    return key
}

/// Builds and signs an X.509 v3 certificate. `issuer` nil means self-signed (the CA itself).
/// Extensions are given as OpenSSL's configuration strings (`critical,CA:FALSE`).
func buildCertificate(
    commonName: String, publicKey: OpaquePointer, issuer: OpaquePointer?, signingKey: OpaquePointer,
    notBefore: time_t, notAfter: time_t, extensions: [(Int32, String)]
) throws -> OpaquePointer {
    drainOpenSSLErrors()
    guard let cert = X509_new() else { throw TLSError.openSSL(.pki, "X509_new failed") }
    var ok = false
    defer { if !ok { X509_free(cert) } }

    guard X509_set_version(cert, 2) == 1,  // 2 means v3
        setRandomSerial(cert),
        X509_set_pubkey(cert, publicKey) == 1,
        ASN1_TIME_set(X509_getm_notBefore(cert), notBefore) != nil,
        ASN1_TIME_set(X509_getm_notAfter(cert), notAfter) != nil
    else { throw TLSError.openSSL(.pki, "cannot fill in the certificate for \(commonName)") }

    guard let subject = X509_NAME_new() else { throw TLSError.openSSL(.pki, "X509_NAME_new failed") }
    defer { X509_NAME_free(subject) }
    guard X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8, commonName, -1, -1, 0) == 1,
        X509_set_subject_name(cert, subject) == 1,
        X509_set_issuer_name(cert, issuer.map { X509_get_subject_name($0) } ?? subject) == 1
    else { throw TLSError.openSSL(.pki, "cannot set the subject \(commonName)") }

    var ctx = X509V3_CTX()
    X509V3_set_ctx(&ctx, issuer ?? cert, cert, nil, nil, 0)
    for (nid, value) in extensions {
        guard let ext = X509V3_EXT_conf_nid(nil, &ctx, nid, value) else {
            throw TLSError.openSSL(.pki, "cannot make extension \(String(cString: OBJ_nid2sn(nid))) = \(value)")
        }
        defer { X509_EXTENSION_free(ext) }
        guard X509_add_ext(cert, ext, -1) == 1 else {
            throw TLSError.openSSL(.pki, "cannot add extension \(String(cString: OBJ_nid2sn(nid)))")
        }
    }
    guard X509_sign(cert, signingKey, EVP_sha256()) > 0 else {
        throw TLSError.openSSL(.pki, "cannot sign the certificate for \(commonName)")
    }
    ok = true
    return cert
}

/// 127 random bits: positive (top bit clear), unpredictable, and never repeated in practice, so
/// revocation by serial cannot hit the wrong certificate.
private func setRandomSerial(_ cert: OpaquePointer) -> Bool {
    var bytes = [UInt8](repeating: 0, count: 16)
    guard RAND_bytes(&bytes, Int32(bytes.count)) == 1 else { return false }
    bytes[0] &= 0x7F
    bytes[0] |= 0x01  // never zero, and always 16 bytes long
    guard let bn = BN_bin2bn(bytes, Int32(bytes.count), nil) else { return false }
    defer { BN_free(bn) }
    return BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nil
}
