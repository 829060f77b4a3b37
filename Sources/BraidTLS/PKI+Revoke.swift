import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

extension PKI {
    /// Revokes every certificate issued to NAME that is not revoked yet and re-signs the CRL.
    /// Returns the serials revoked now; revoking a name again only re-signs the CRL.
    @discardableResult
    public func revoke(name: String, crlDays: Int = PKI.defaultCRLDays) throws -> [String] {
        try PKI.validate(name: name)
        return try locked { try revokeLocked(name: name, crlDays: crlDays) }
    }

    private func revokeLocked(name: String, crlDays: Int) throws -> [String] {
        var index = try readIndex()
        guard index.contains(where: { $0.name == name }) else {
            throw TLSError(.pki, "no certificate was issued to \(name) (see \(indexPath))")
        }
        let now = Int64(time(nil))
        var revoked: [String] = []
        for i in index.indices where index[i].name == name && index[i].revokedAt == nil {
            index[i].revokedAt = now
            revoked.append(index[i].serial)
        }
        // The CRL first: a revocation is only real once the list the concentrator reads has it,
        // and an index that says "revoked" too early would hide the failure on the next run.
        try writeCRL(days: crlDays, entries: index)
        try writeIndex(index)
        return revoked
    }

    /// Re-signs the CRL from the index with a new nextUpdate `days` from now. The concentrator
    /// refuses every peer once the CRL it holds is past its nextUpdate, so run this (or
    /// `braid pki crl`) well before.
    public func writeCRL(days: Int = PKI.defaultCRLDays) throws {
        try locked { try writeCRL(days: days, entries: try readIndex()) }
    }

    func writeCRL(days: Int, entries: [IndexEntry]) throws {
        guard days > 0 else { throw TLSError(.pki, "CRL validity must be at least one day (\(days))") }
        let caCert = try readCertificate(caCertificatePath, reason: .pki)
        defer { X509_free(caCert) }
        let caKey = try readPrivateKey(caKeyPath, reason: .pki)
        defer { EVP_PKEY_free(caKey) }
        drainOpenSSLErrors()
        guard let crl = X509_CRL_new() else { throw TLSError.openSSL(.pki, "X509_CRL_new failed") }
        defer { X509_CRL_free(crl) }

        let now = time(nil)
        guard let last = ASN1_TIME_set(nil, now), let next = ASN1_TIME_set(nil, now + time_t(days) * 86400) else {
            throw TLSError.openSSL(.pki, "ASN1_TIME_set failed")
        }
        defer {
            ASN1_TIME_free(last)
            ASN1_TIME_free(next)
        }
        guard X509_CRL_set_version(crl, 1) == 1,  // 1 means v2, needed for the CRL number
            X509_CRL_set_issuer_name(crl, X509_get_subject_name(caCert)) == 1,
            X509_CRL_set1_lastUpdate(crl, last) == 1,
            X509_CRL_set1_nextUpdate(crl, next) == 1
        else { throw TLSError.openSSL(.pki, "cannot fill in the CRL") }

        for entry in entries {
            guard let revokedAt = entry.revokedAt else { continue }
            try addRevoked(crl, serial: entry.serial, at: time_t(revokedAt))
        }
        // The CRL number only has to grow; the signing time does, without a counter on disk.
        guard let number = ASN1_INTEGER_new() else { throw TLSError.openSSL(.pki, "ASN1_INTEGER_new failed") }
        defer { ASN1_INTEGER_free(number) }
        guard ASN1_INTEGER_set_int64(number, Int64(now)) == 1,
            X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) == 1,
            X509_CRL_sort(crl) == 1,
            X509_CRL_sign(crl, caKey, EVP_sha256()) > 0
        else { throw TLSError.openSSL(.pki, "cannot sign the CRL") }
        let pem = try pemBytes("CRL") { PEM_write_bio_X509_CRL($0, crl) }
        try writeFile(crlPath, pem, mode: 0o644, replace: true)
    }

    private func addRevoked(_ crl: OpaquePointer, serial: String, at revokedAt: time_t) throws {
        var bn: OpaquePointer? = nil
        guard BN_hex2bn(&bn, serial) > 0, let bn else {
            throw TLSError.openSSL(.pki, "\(indexPath): bad serial (\(serial))")
        }
        defer { BN_free(bn) }
        guard let revoked = X509_REVOKED_new() else { throw TLSError.openSSL(.pki, "X509_REVOKED_new failed") }
        guard let asn1Serial = BN_to_ASN1_INTEGER(bn, nil), let when = ASN1_TIME_set(nil, revokedAt) else {
            X509_REVOKED_free(revoked)
            throw TLSError.openSSL(.pki, "cannot encode serial \(serial)")
        }
        defer {
            ASN1_INTEGER_free(asn1Serial)
            ASN1_TIME_free(when)
        }
        guard X509_REVOKED_set_serialNumber(revoked, asn1Serial) == 1,
            X509_REVOKED_set_revocationDate(revoked, when) == 1,
            X509_CRL_add0_revoked(crl, revoked) == 1  // takes ownership
        else {
            X509_REVOKED_free(revoked)
            throw TLSError.openSSL(.pki, "cannot add serial \(serial) to the CRL")
        }
    }
}
