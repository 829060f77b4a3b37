import BraidTLS
import XCTest

/// A CRL that arrives after a connection is up: the connection's serial is what it is checked by.
final class RevocationListTests: XCTestCase {
    func testRevokesTheSerialOfAnEstablishedPeer() throws {
        let f = try TLSFixture()
        try f.pki.issue(name: "sub_43", usage: .client)
        let client = try TLSEngine(context: try f.clientContext())
        let server = try TLSEngine(context: try f.serverContext(crl: true))
        let x = shuttle(client: client, server: server)
        XCTAssertNil(x.serverError)
        let serial = try XCTUnwrap(server.peerSerial)
        let index = try f.pki.readIndex()
        XCTAssertEqual(index.first { $0.name == TLSFixture.clientName }?.serial, serial)

        let before = try RevocationList(path: f.pki.crlPath, ca: f.pki.caCertificatePath)
        XCTAssertFalse(before.revokes(serial: serial))
        try f.pki.revoke(name: TLSFixture.clientName)
        let after = try RevocationList(path: f.pki.crlPath, ca: f.pki.caCertificatePath)
        XCTAssertTrue(after.revokes(serial: serial))
        let other = try XCTUnwrap(index.first { $0.name == "sub_43" }?.serial)
        XCTAssertFalse(after.revokes(serial: other))
        XCTAssertFalse(after.revokes(serial: "not hex"))
    }

    func testACRLOfAnotherCAIsRefusedNamingTheFile() throws {
        let f = try TLSFixture()
        let g = try TLSFixture()
        XCTAssertThrowsError(try RevocationList(path: g.pki.crlPath, ca: f.pki.caCertificatePath)) { error in
            XCTAssertTrue("\(error)".contains(g.pki.crlPath), "\(error)")
        }
    }
}
