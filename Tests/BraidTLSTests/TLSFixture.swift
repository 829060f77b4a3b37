import BraidTLS
import Foundation
import XCTest

/// A CA in a temporary directory with a concentrator ("conc.example") and a gateway ("sub_42"),
/// and helpers to build contexts from its files.
final class TLSFixture {
    let root: String
    let pki: PKI
    static let serverName = "conc.example"
    static let clientName = "sub_42"

    init() throws {
        var template = Array((NSTemporaryDirectory() + "braid-tls-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        root = String(cString: made)
        pki = try PKI.initialize(directory: root + "/ca")
        try pki.issue(name: Self.serverName, usage: .server)
        try pki.issue(name: Self.clientName, usage: .client)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func serverContext(crl: Bool = false) throws -> TLSContext {
        try TLSContext(
            role: .server, ca: pki.caCertificatePath, certificate: pki.certificatePath(for: Self.serverName),
            key: pki.keyPath(for: Self.serverName), crl: crl ? pki.crlPath : nil)
    }

    func clientContext(name: String = TLSFixture.clientName, from other: PKI? = nil, expecting: String = serverName)
        throws -> TLSContext
    {
        let issuer = other ?? pki
        return try TLSContext(
            role: .client(serverName: expecting), ca: pki.caCertificatePath,
            certificate: issuer.certificatePath(for: name), key: issuer.keyPath(for: name))
    }

    static func mode(_ path: String) -> mode_t {
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0, "stat \(path)")
        return st.st_mode & 0o7777
    }
}

/// Both sides' outcome of a handshake run in memory.
struct Exchange {
    var clientError: TLSError?
    var serverError: TLSError?
    var clientReceived: [UInt8] = []
    var serverReceived: [UInt8] = []
}

/// Moves bytes between two engines until neither has anything to send (bounded rounds).
func shuttle(client: TLSEngine, server: TLSEngine) -> Exchange {
    var x = Exchange()
    do { try client.start() } catch { x.clientError = error as? TLSError }
    for _ in 0..<20 {
        let toServer = client.takeOutbound()
        if !toServer.isEmpty && x.serverError == nil {
            do { x.serverReceived += try server.receive(toServer).plaintext } catch {
                x.serverError = error as? TLSError
            }
        }
        let toClient = server.takeOutbound()
        if !toClient.isEmpty && x.clientError == nil {
            do { x.clientReceived += try client.receive(toClient).plaintext } catch {
                x.clientError = error as? TLSError
            }
        }
        if toServer.isEmpty && toClient.isEmpty && !client.hasOutbound { break }
    }
    return x
}
