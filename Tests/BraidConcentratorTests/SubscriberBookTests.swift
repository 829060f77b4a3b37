import BraidConfig
import BraidDataPlane
import BraidWire
import XCTest

@testable import BraidConcentrator

/// Who may use the data port: session keys only while their subscriber is enabled, and the
/// pre-shared key next to TLS only with a class of its own, whose limits all its holders share.
final class SubscriberBookTests: XCTestCase {
    let psk = [UInt8](repeating: 0x42, count: 32)
    let sessionKey = [UInt8](repeating: 0x17, count: ControlMessage.SessionGrant.keySize)
    /// Far ahead of the monotonic clock the book reads: the tests are not about key expiry.
    let notAfter = UInt64.max / 2

    /// A concentrator's configuration as an operator writes it, read by the real reader.
    func config(tls: Bool = true, pskClass: String? = nil, enabled: Bool = true) -> ConcentratorConfig {
        let text = """
            config concentrator 'main'
            \toption psk_file '/etc/braid/psk'
            \(tls ? "\toption ca '/ca.crt'\n\toption cert '/conc.crt'\n\toption key '/conc.key'" : "")
            \(pskClass.map { "\toption psk_class '\($0)'" } ?? "")

            config class 'standard'

            config class 'pskc'
            \toption rate_down '8M'
            \toption rate_up '2M'
            \toption max_sessions '2'

            config subscriber 'cpe_1'
            \toption class 'standard'
            \toption enabled '\(enabled ? 1 : 0)'
            """
        do {
            var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
            return try reader.concentrator()
        } catch {
            fatalError("test configuration does not read: \(error)\n\(text)")
        }
    }

    func refusal(_ a: Admission) -> ConvertError? {
        if case .refuse(let e) = a { return e }
        return nil
    }

    func grant(_ a: Admission) -> SessionGrant? {
        if case .admit(let g) = a { return g }
        return nil
    }

    func testPresharedKeyNextToTLSIsRefusedWithoutAClass() {
        let book = SubscriberBook(config: config(), presharedKey: psk)
        XCTAssertThrowsError(try book.key(for: 0)) { error in
            XCTAssertTrue("\(error)".contains("psk_class"), "\(error)")
        }
        XCTAssertEqual(refusal(book.admit(keyID: 0))?.code, .notAuthorized)
    }

    func testPresharedKeyAloneIsAcceptedWithoutLimits() throws {
        let book = SubscriberBook(config: config(tls: false), presharedKey: psk)
        XCTAssertEqual(try book.key(for: 0), psk)
        var grants: [SessionGrant] = []
        for _ in 0..<10 { grants.append(try XCTUnwrap(grant(book.admit(keyID: 0)))) }
        XCTAssertNil(grants[0].limitToClient)
        XCTAssertEqual(book.sessions[SubscriberBook.presharedOwner], 10)
    }

    func testPresharedClassLimitsEveryHolderTogether() throws {
        let book = SubscriberBook(config: config(pskClass: "pskc"), presharedKey: psk)
        XCTAssertEqual(try book.key(for: 0), psk)
        var first = try XCTUnwrap(grant(book.admit(keyID: 0)))
        let second = try XCTUnwrap(grant(book.admit(keyID: 0)))
        XCTAssertEqual(refusal(book.admit(keyID: 0))?.code, .resourceExceeded, "max_sessions 2")
        // Rates are the class's, and one bucket is shared by all the key's sessions.
        XCTAssertEqual(first.limitToClient?.bitsPerSecond, 8_000_000)
        XCTAssertEqual(first.limitToOrigin?.bitsPerSecond, 2_000_000)
        XCTAssertTrue(first.limitToClient === second.limitToClient)
        // A session that ends gives its place back.
        first.ticket = nil
        first = SessionGrant(limitToOrigin: nil, limitToClient: nil, ticket: nil)
        XCTAssertNotNil(grant(book.admit(keyID: 0)))
    }

    func testReloadWithoutPresharedClassRefusesTheKeyEvenMidHandshake() throws {
        let book = SubscriberBook(config: config(pskClass: "pskc"), presharedKey: psk)
        // The MAC was checked with the key just before the reload; admission comes after it.
        XCTAssertEqual(try book.key(for: 0), psk)
        book.update(config(pskClass: nil))
        XCTAssertEqual(refusal(book.admit(keyID: 0))?.code, .notAuthorized)
        XCTAssertThrowsError(try book.key(for: 0))
        // And back: the file never left, so a reload can accept it again.
        book.update(config(pskClass: "pskc"))
        XCTAssertNotNil(grant(book.admit(keyID: 0)))
    }

    func testDisabledSubscribersKeyFailsEvenMidHandshake() throws {
        let book = SubscriberBook(config: config(), presharedKey: psk)
        try book.install(id: 7, key: sessionKey, notAfterMillis: notAfter, owner: "cpe_1")
        XCTAssertEqual(try book.key(for: 7), sessionKey)
        // A data connection checked its MAC with key 7; the reload disabling cpe_1 lands now.
        let gone = book.update(config(enabled: false))
        XCTAssertEqual(gone, ["cpe_1"])
        XCTAssertEqual(refusal(book.admit(keyID: 7))?.code, .notAuthorized)
        XCTAssertThrowsError(try book.key(for: 7))
        // Nor does the pre-shared key let it in: next to TLS without psk_class it is refused.
        XCTAssertEqual(refusal(book.admit(keyID: 0))?.code, .notAuthorized)
    }
}
