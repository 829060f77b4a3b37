import BraidTLS
import Foundation
import XCTest

final class TLSEngineTests: XCTestCase {
    func testMutualHandshakeInMemoryReportsBothNamesAndCarriesData() throws {
        let f = try TLSFixture()
        let client = try TLSEngine(context: try f.clientContext())
        let server = try TLSEngine(context: try f.serverContext(crl: true))
        try client.send(Array("hello from the gateway".utf8))  // held until the handshake is done
        let x = shuttle(client: client, server: server)
        XCTAssertNil(x.clientError)
        XCTAssertNil(x.serverError)
        XCTAssertEqual(client.state, .established)
        XCTAssertEqual(server.state, .established)
        XCTAssertEqual(server.peerCommonName, TLSFixture.clientName)
        XCTAssertEqual(client.peerCommonName, TLSFixture.serverName)
        XCTAssertEqual(String(decoding: x.serverReceived, as: UTF8.self), "hello from the gateway")

        try server.send(Array("hello, sub_42".utf8))
        let reply = try client.receive(server.takeOutbound())
        XCTAssertEqual(String(decoding: reply.plaintext, as: UTF8.self), "hello, sub_42")

        // The client closes its direction; the server's last words still arrive, then it closes.
        client.close()
        XCTAssertThrowsError(try client.send([1]), "nothing is sent after close_notify")
        let closing = try server.receive(client.takeOutbound())
        XCTAssertTrue(closing.closedByPeer)
        XCTAssertTrue(server.inputClosed)
        XCTAssertEqual(server.state, .established, "half closed: the server may still send")
        try server.send(Array("bye".utf8))
        server.close()
        let last = try client.receive(server.takeOutbound())
        XCTAssertEqual(String(decoding: last.plaintext, as: UTF8.self), "bye")
        XCTAssertTrue(last.closedByPeer)
        XCTAssertEqual(client.state, .closed)
        XCTAssertEqual(server.state, .closed)
    }

    func testExpiredClientCertificateIsRefusedAsExpired() throws {
        let f = try TLSFixture()
        let now = time(nil)
        try f.pki.issue(name: "old", usage: .client, notBefore: now - 10 * 86400, notAfter: now - 86400)
        let x = try handshake(f, client: f.clientContext(name: "old"))
        XCTAssertEqual(x.serverError?.reason, .expiredCertificate, "\(String(describing: x.serverError))")
        XCTAssertEqual(x.clientError?.reason, .expiredCertificate, "the client learns why from the alert")
    }

    func testClientCertificateFromAnotherCAIsRefusedAsUnknownCA() throws {
        let f = try TLSFixture()
        let other = try PKI.initialize(directory: f.root + "/other-ca", commonName: "someone else's CA")
        try other.issue(name: TLSFixture.clientName, usage: .client)
        let x = try handshake(f, client: f.clientContext(from: other))
        XCTAssertEqual(x.serverError?.reason, .unknownCA, "\(String(describing: x.serverError))")
        XCTAssertEqual(x.clientError?.reason, .unknownCA)
    }

    func testRevokedClientCertificateIsRefusedAsRevoked() throws {
        let f = try TLSFixture()
        try f.pki.revoke(name: TLSFixture.clientName)
        let x = try handshake(f, client: f.clientContext())
        XCTAssertEqual(x.serverError?.reason, .revoked, "\(String(describing: x.serverError))")
        XCTAssertEqual(x.clientError?.reason, .revoked)
        XCTAssertTrue(x.serverError?.detail.contains(TLSFixture.clientName) ?? false, "names the peer")
    }

    func testServerWithAnotherNameIsRefusedByTheClientAsNameMismatch() throws {
        let f = try TLSFixture()
        let x = try handshake(f, client: f.clientContext(expecting: "other.example"))
        XCTAssertEqual(x.clientError?.reason, .nameMismatch, "\(String(describing: x.clientError))")
        XCTAssertNotNil(x.serverError, "the server hears the client's alert")
    }

    func testServerPresentingAClientCertificateIsRefused() throws {
        let f = try TLSFixture()
        // A gateway's certificate (clientAuth) must not pass for a concentrator even with the
        // right name: issue one whose CN is the server's name.
        try f.pki.issue(name: "gw.example", usage: .client)
        let serverContext = try TLSContext(
            role: .server, ca: f.pki.caCertificatePath, certificate: f.pki.certificatePath(for: "gw.example"),
            key: f.pki.keyPath(for: "gw.example"))
        let x = shuttle(
            client: try TLSEngine(context: try f.clientContext(expecting: "gw.example")),
            server: try TLSEngine(context: serverContext))
        XCTAssertNotNil(x.clientError, "a clientAuth certificate is no server certificate")
        XCTAssertNotEqual(x.clientError?.reason, .nameMismatch)
    }

    func testPlaintextToTheServerIsRefusedAsNotTLS() throws {
        let f = try TLSFixture()
        let server = try TLSEngine(context: try f.serverContext())
        XCTAssertThrowsError(try server.receive(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))) { error in
            XCTAssertEqual((error as? TLSError)?.reason, .notTLS)
            XCTAssertTrue("\(error)".contains("GET / HTTP"), "shows what came: \(error)")
        }
        if case .failed(let e) = server.state { XCTAssertEqual(e.reason, .notTLS) } else { XCTFail("\(server.state)") }
        XCTAssertThrowsError(try server.receive([0x16, 0x03, 0x01]), "stays failed")
    }

    func testContextErrorsNameTheFile() throws {
        let f = try TLSFixture()
        let missing = f.root + "/missing.key"
        XCTAssertThrowsError(
            try TLSContext(
                role: .server, ca: f.pki.caCertificatePath,
                certificate: f.pki.certificatePath(for: TLSFixture.serverName), key: missing)
        ) { error in
            XCTAssertEqual((error as? TLSError)?.reason, .configuration)
            XCTAssertTrue("\(error)".contains(missing), "\(error)")
        }
        // The key of another certificate.
        XCTAssertThrowsError(
            try TLSContext(
                role: .server, ca: f.pki.caCertificatePath,
                certificate: f.pki.certificatePath(for: TLSFixture.serverName),
                key: f.pki.keyPath(for: TLSFixture.clientName))
        ) { error in
            XCTAssertTrue("\(error)".contains("is not the key of"), "\(error)")
        }
    }

    func testCRLFromAnotherCAIsRefusedWhenTheContextIsBuilt() throws {
        let f = try TLSFixture()
        let other = try PKI.initialize(directory: f.root + "/other-ca")
        XCTAssertThrowsError(
            try TLSContext(
                role: .server, ca: f.pki.caCertificatePath,
                certificate: f.pki.certificatePath(for: TLSFixture.serverName),
                key: f.pki.keyPath(for: TLSFixture.serverName), crl: other.crlPath)
        ) { error in
            XCTAssertEqual((error as? TLSError)?.reason, .crlUnusable)
            XCTAssertTrue("\(error)".contains(other.crlPath), "\(error)")
        }
    }

    private func handshake(_ f: TLSFixture, client: TLSContext) throws -> Exchange {
        shuttle(client: try TLSEngine(context: client), server: try TLSEngine(context: try f.serverContext(crl: true)))
    }
}
