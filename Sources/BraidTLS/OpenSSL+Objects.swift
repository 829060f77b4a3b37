import BraidCore
import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

// Small helpers over libcrypto objects shared by the PKI and the TLS context. Each returns an
// owned pointer the caller frees, or throws naming the file and what OpenSSL said.

/// Reads the first PEM certificate of a file.
func readCertificate(_ path: String, reason: TLSError.Reason) throws -> OpaquePointer {
    try withFileBIO(path, reason: reason) { bio in
        guard let x = PEM_read_bio_X509(bio, nil, nil, nil) else {
            throw TLSError.openSSL(reason, "\(path): no PEM certificate")
        }
        return x
    }
}

/// Reads a PEM private key.
func readPrivateKey(_ path: String, reason: TLSError.Reason) throws -> OpaquePointer {
    if let problem = secretFileProblem(path) { throw TLSError(reason, problem) }
    return try withFileBIO(path, reason: reason) { bio in
        guard let k = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            throw TLSError.openSSL(reason, "\(path): no PEM private key")
        }
        return k
    }
}

/// Reads a PEM CRL.
func readCRL(_ path: String, reason: TLSError.Reason) throws -> OpaquePointer {
    try withFileBIO(path, reason: reason) { bio in
        guard let c = PEM_read_bio_X509_CRL(bio, nil, nil, nil) else {
            throw TLSError.openSSL(reason, "\(path): no PEM CRL")
        }
        return c
    }
}

private func withFileBIO<T>(_ path: String, reason: TLSError.Reason, _ body: (OpaquePointer) throws -> T) throws -> T {
    drainOpenSSLErrors()
    guard let bio = BIO_new_file(path, "r") else {
        let e = errno
        drainOpenSSLErrors()
        throw TLSError(reason, "cannot read \(path): \(String(cString: strerror(e)))")
    }
    defer { BIO_free(bio) }
    return try body(bio)
}

/// Runs a PEM writer against a memory BIO and returns what it wrote.
func pemBytes(_ what: String, _ write: (OpaquePointer) -> Int32) throws -> [UInt8] {
    guard let bio = BIO_new(BIO_s_mem()) else { throw TLSError.openSSL(.pki, "BIO_new failed") }
    defer { BIO_free(bio) }
    guard write(bio) == 1 else { throw TLSError.openSSL(.pki, "cannot encode \(what)") }
    var data: UnsafeMutablePointer<CChar>? = nil
    let n = braid_bio_mem_data(bio, &data)
    guard n > 0, let data else { throw TLSError.openSSL(.pki, "cannot encode \(what)") }
    return Array(UnsafeRawBufferPointer(start: data, count: n))
}

/// A certificate's serial number in upper-case hex, as the index and `openssl x509 -serial` show it.
func serialHex(of cert: OpaquePointer) -> String {
    guard let bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nil) else { return "?" }
    defer { BN_free(bn) }
    guard let hex = BN_bn2hex(bn) else { return "?" }
    defer { braid_openssl_free(hex) }
    return String(cString: hex)
}

/// The certificate subject's first commonName, nil when it has none.
func commonName(of cert: OpaquePointer) -> String? {
    guard let subject = X509_get_subject_name(cert) else { return nil }
    let index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)
    guard index >= 0, let entry = X509_NAME_get_entry(subject, index),
        let data = X509_NAME_ENTRY_get_data(entry)
    else { return nil }
    var utf8: UnsafeMutablePointer<UInt8>? = nil
    let n = ASN1_STRING_to_UTF8(&utf8, data)
    guard n >= 0, let utf8 else { return nil }
    defer { braid_openssl_free(utf8) }
    return String(decoding: UnsafeBufferPointer(start: utf8, count: Int(n)), as: UTF8.self)
}

/// Seconds since 1970 of an ASN1_TIME, nil if it cannot be read.
func unixTime(_ t: UnsafePointer<ASN1_TIME>?) -> Int64? {
    guard let t else { return nil }
    var tm = tm()
    guard ASN1_TIME_to_tm(t, &tm) == 1 else { return nil }
    return Int64(timegm(&tm))
}

/// The DNS names of a certificate's subjectAltName, in order.
func dnsAltNames(of cert: OpaquePointer) -> [String] {
    var names: [String] = []
    var buffer = [CChar](repeating: 0, count: 256)
    // A DNS name is at most 253 bytes; a certificate with hundreds of them is not ours to read.
    while names.count < 64, braid_x509_dns_alt_name(cert, Int32(names.count), &buffer, buffer.count) == 1 {
        names.append(String(cString: buffer))
    }
    return names
}

extension TLSContext {
    /// The subject common name of the first certificate in `path` (a concentrator's own name,
    /// which its data connections' MACs may be bound to); nil when it has none.
    public static func commonName(ofCertificateAt path: String) throws -> String? {
        let cert = try readCertificate(path, reason: .configuration)
        defer { X509_free(cert) }
        return BraidTLS.commonName(of: cert)
    }

    /// Every name a gateway may know the certificate in `path` by: its subject common name and
    /// the DNS names of its subjectAltName (what a gateway's `server_name` is checked against),
    /// without repeats.
    public static func names(ofCertificateAt path: String) throws -> [String] {
        let cert = try readCertificate(path, reason: .configuration)
        defer { X509_free(cert) }
        var names: [String] = []
        for name in [BraidTLS.commonName(of: cert)].compactMap({ $0 }) + dnsAltNames(of: cert)
        where !names.contains(name) {
            names.append(name)
        }
        return names
    }
}
