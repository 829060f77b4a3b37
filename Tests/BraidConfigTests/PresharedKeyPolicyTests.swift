import BraidCore
import XCTest

@testable import BraidConfig

/// The pre-shared key's class and the concentrator's identities, as read from a file and reloaded.
final class PresharedKeyPolicyTests: XCTestCase {
    func concentrator(_ extra: String, tls: Bool = true) throws -> ConcentratorConfig {
        var text = "config concentrator 'main'\n\toption psk_file '/etc/braid/psk'\n"
        if tls { text += "\toption ca '/ca.crt'\n\toption cert '/c.crt'\n\toption key '/c.key'\n" }
        text += extra + "\nconfig class 'pskc'\n\toption max_sessions '4'\n"
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
        return try reader.concentrator()
    }

    func errors(_ text: String) -> [String] {
        do {
            var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
            _ = try reader.concentrator()
            return []
        } catch let e as ConfigErrors {
            return e.errors.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    func testPresharedKeyNextToTLSNeedsAClass() throws {
        XCTAssertFalse(try concentrator("").acceptsPresharedKey)
        let withClass = try concentrator("\toption psk_class 'pskc'\n")
        XCTAssertEqual(withClass.pskClass, "pskc")
        XCTAssertTrue(withClass.acceptsPresharedKey)
        XCTAssertTrue(try concentrator("", tls: false).acceptsPresharedKey)
    }

    func testPresharedClassErrors() {
        XCTAssertEqual(
            errors("config concentrator 'main'\n\toption psk_file '/k'\n\toption psk_class 'gold'\n"),
            ["braid.conf:3: main.psk_class: no 'config class' section has this name (gold)"])
        let noKey = errors(
            "config concentrator 'main'\n\toption ca '/a'\n\toption cert '/b'\n\toption key '/c'\n"
                + "\toption psk_class 'pskc'\n\nconfig class 'pskc'\n")
        XCTAssertEqual(noKey, ["braid.conf:5: main.psk_class: needs psk_file (pskc)"])
    }

    func testIdentities() throws {
        let c = try concentrator("\tlist identity 'conc1.example.net'\n\tlist identity '198.18.10.2'\n")
        XCTAssertEqual(c.identities, ["conc1.example.net", "198.18.10.2"])
    }

    func testReloadChangesThePresharedClassButNotTheIdentity() throws {
        let running = try concentrator("")
        var reader = BraidConfigReader(
            package: try UCIParser.parse(
                "config concentrator 'main'\n\toption psk_file '/etc/braid/psk'\n\toption ca '/ca.crt'\n"
                    + "\toption cert '/c.crt'\n\toption key '/c.key'\n\toption psk_class 'pskc'\n"
                    + "\nconfig class 'pskc'\n\toption max_sessions '4'\n", file: "braid.conf"))
        let (new, diff) = try reader.concentratorReload(running: running)
        XCTAssertEqual(new.pskClass, "pskc")
        XCTAssertTrue(diff.pskClassChanged)
        XCTAssertEqual(diff.summary, "psk_class changed")

        var again = BraidConfigReader(
            package: try UCIParser.parse(
                "config concentrator 'main'\n\toption psk_file '/etc/braid/psk'\n\toption ca '/ca.crt'\n"
                    + "\toption cert '/c.crt'\n\toption key '/c.key'\n\tlist identity 'x.example.net'\n"
                    + "\nconfig class 'pskc'\n\toption max_sessions '4'\n", file: "braid.conf"))
        XCTAssertThrowsError(try again.concentratorReload(running: running)) { error in
            XCTAssertTrue("\(error)".contains("identity"), "\(error)")
        }
    }
}
