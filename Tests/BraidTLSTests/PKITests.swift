import BraidTLS
import COpenSSL
import Foundation
import XCTest

final class PKITests: XCTestCase {
    func testInitWritesCAFilesWithTheirModesAndRefusesASecondCA() throws {
        let f = try TLSFixture()
        XCTAssertEqual(TLSFixture.mode(f.pki.directory), 0o700)
        XCTAssertEqual(TLSFixture.mode(f.pki.caKeyPath), 0o600)
        XCTAssertEqual(TLSFixture.mode(f.pki.caCertificatePath), 0o644)
        XCTAssertEqual(TLSFixture.mode(f.pki.crlPath), 0o644)
        XCTAssertThrowsError(try PKI.initialize(directory: f.pki.directory)) { error in
            XCTAssertTrue("\(error)".contains("already holds a CA"), "\(error)")
        }
        let ca = try loadCertificate(f.pki.caCertificatePath)
        defer { X509_free(ca) }
        XCTAssertEqual(X509_check_ca(ca), 1, "ca.crt is a CA certificate")
    }

    func testIssueWritesKeyWithMode0600SignedByTheCAAndRefusesToOverwrite() throws {
        let f = try TLSFixture()
        let key = f.pki.keyPath(for: TLSFixture.clientName)
        XCTAssertEqual(TLSFixture.mode(key), 0o600)
        XCTAssertEqual(TLSFixture.mode(f.pki.certificatePath(for: TLSFixture.clientName)), 0o644)

        let ca = try loadCertificate(f.pki.caCertificatePath)
        defer { X509_free(ca) }
        let cert = try loadCertificate(f.pki.certificatePath(for: TLSFixture.clientName))
        defer { X509_free(cert) }
        XCTAssertEqual(X509_verify(cert, X509_get0_pubkey(ca)), 1, "signed by the CA")
        XCTAssertEqual(X509_check_issued(ca, cert), X509_V_OK)
        XCTAssertNotEqual(X509_get_extended_key_usage(cert) & UInt32(XKU_SSL_CLIENT), 0, "clientAuth")
        XCTAssertEqual(X509_get_extended_key_usage(cert) & UInt32(XKU_SSL_SERVER), 0, "not serverAuth")

        let before = try f.pki.readIndex()
        XCTAssertThrowsError(try f.pki.issue(name: TLSFixture.clientName, usage: .client)) { error in
            XCTAssertTrue("\(error)".contains("already exists"), "\(error)")
        }
        XCTAssertEqual(try f.pki.readIndex(), before, "a refused issue leaves the index alone")
        let again = try f.pki.issue(name: TLSFixture.clientName, usage: .client, force: true)
        XCTAssertEqual(TLSFixture.mode(key), 0o600, "a replaced key keeps mode 0600")
        XCTAssertEqual(try f.pki.readIndex().count, before.count + 1)
        XCTAssertFalse(before.contains { $0.serial == again.serial }, "a new serial")
    }

    func testServerCertificateCarriesItsNameAndServerAuth() throws {
        let f = try TLSFixture()
        let cert = try loadCertificate(f.pki.certificatePath(for: TLSFixture.serverName))
        defer { X509_free(cert) }
        XCTAssertEqual(X509_check_host(cert, TLSFixture.serverName, 0, 0, nil), 1)
        XCTAssertNotEqual(X509_check_host(cert, "other.example", 0, 0, nil), 1)
        XCTAssertNotEqual(X509_get_extended_key_usage(cert) & UInt32(XKU_SSL_SERVER), 0, "serverAuth")
    }

    /// The names a concentrator binds data connections to: its common name and every DNS name of
    /// its subjectAltName, since a gateway's `server_name` is checked against those. A certificate
    /// from another CA tool may have a common name that is none of them.
    func testCertificateNamesAreTheCommonNameAndTheDNSAltNames() throws {
        let f = try TLSFixture()
        XCTAssertEqual(
            try TLSContext.names(ofCertificateAt: f.pki.certificatePath(for: TLSFixture.serverName)),
            [TLSFixture.serverName])
        let dir = f.pki.directory
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
            "-subj", "/CN=conc1", "-addext", "subjectAltName=DNS:conc.example.net,IP:198.18.10.2,DNS:conc1",
            "-keyout", dir + "/other.key", "-out", dir + "/other.crt",
        ]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        XCTAssertEqual(openssl.terminationStatus, 0)
        XCTAssertEqual(try TLSContext.names(ofCertificateAt: dir + "/other.crt"), ["conc1", "conc.example.net"])
    }

    func testRevokePutsTheSerialInASignedCRL() throws {
        let f = try TLSFixture()
        let serial = try XCTUnwrap(try f.pki.readIndex().first { $0.name == TLSFixture.clientName }?.serial)
        XCTAssertEqual(try f.pki.revoke(name: TLSFixture.clientName), [serial])
        XCTAssertEqual(try f.pki.revoke(name: TLSFixture.clientName), [], "revoking again only re-signs")

        let ca = try loadCertificate(f.pki.caCertificatePath)
        defer { X509_free(ca) }
        let bio = BIO_new_file(f.pki.crlPath, "r")
        defer { BIO_free(bio) }
        let crl = try XCTUnwrap(PEM_read_bio_X509_CRL(bio, nil, nil, nil))
        defer { X509_CRL_free(crl) }
        XCTAssertEqual(X509_CRL_verify(crl, X509_get0_pubkey(ca)), 1, "signed by the CA")
        let cert = try loadCertificate(f.pki.certificatePath(for: TLSFixture.clientName))
        defer { X509_free(cert) }
        var entry: OpaquePointer? = nil
        XCTAssertEqual(X509_CRL_get0_by_cert(crl, &entry, cert), 1, "the client's certificate is listed")
        let server = try loadCertificate(f.pki.certificatePath(for: TLSFixture.serverName))
        defer { X509_free(server) }
        XCTAssertEqual(X509_CRL_get0_by_cert(crl, &entry, server), 0, "the server's is not")
        XCTAssertNotNil(try f.pki.readIndex().first { $0.name == TLSFixture.clientName }?.revokedAt)
    }

    func testRevokeOfAnUnknownNameAndBadNamesAreRefused() throws {
        let f = try TLSFixture()
        XCTAssertThrowsError(try f.pki.revoke(name: "nobody")) { error in
            XCTAssertTrue("\(error)".contains("nobody"), "\(error)")
        }
        for bad in ["", "../etc", "-x", ".hidden", "a b", String(repeating: "a", count: 65)] {
            XCTAssertThrowsError(try f.pki.issue(name: bad, usage: .client), "name \(bad)") { error in
                XCTAssertEqual((error as? TLSError)?.reason, .pki)
            }
        }
        XCTAssertThrowsError(try PKI(directory: f.root + "/nothing-here"))
    }

    private func loadCertificate(_ path: String) throws -> OpaquePointer {
        let bio = try XCTUnwrap(BIO_new_file(path, "r"), path)
        defer { BIO_free(bio) }
        return try XCTUnwrap(PEM_read_bio_X509(bio, nil, nil, nil), path)
    }
}
