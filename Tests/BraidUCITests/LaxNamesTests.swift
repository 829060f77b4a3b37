import BraidConfig
import Glibc
import XCTest

/// `braid uci` takes what OpenWrt's uci takes (any section type on `add`, option names in any
/// case); braid's schema is `braid check`'s business, which names what it refuses.
final class LaxNamesTests: XCTestCase {
    func testUCITakesWhatCheckRefuses() throws {
        var template = Array("/tmp/braid-uci-lax-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let work = String(cString: try XCTUnwrap(made))
        defer { RecordedUCITests.removeTree(work) }
        mkdir(work + "/config", 0o700)
        let files = UCILocalFiles()
        let gateway = "config gateway 'main'\n\toption server '198.18.10.2'\n\toption psk_file '/etc/braid/psk'\n"
            + "\tlist lan_device 'br-lan'\n"
        try files.replaceAtomically(work + "/config/braid", gateway)
        func uci(_ args: String...) -> UCIResult {
            UCICommandLine.run(args, confDir: work + "/config", overrideDir: work + "/none", saveDir: work + "/save")
        }
        XCTAssertEqual(uci("add", "braid", "x-y").status, 0)
        XCTAssertEqual(uci("set", "braid.main.Extra_Opt=1").status, 0)
        XCTAssertEqual(uci("commit", "braid").status, 0)
        XCTAssertEqual(uci("show", "braid.@x-y[0]").output, "braid.cfg02b7a3=x-y\n")

        let text = try XCTUnwrap(files.read(work + "/config/braid"))
        let problems = BraidConfigReader(package: try UCIParser.parse(text, file: "braid")).check().problems
        XCTAssertEqual(
            problems.map(\.description),
            ["braid:5: main.Extra_Opt: unknown option (1)", "braid:7: @x-y[0]: unknown section type (x-y)"])
    }
}
