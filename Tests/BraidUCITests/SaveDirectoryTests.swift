import Foundation
import XCTest

@testable import BraidConfig

/// The save directory holds changes that `commit` writes into the configuration, and `set` and
/// `commit` write into it: one that another user made or can write to is refused, and nothing in
/// it is written through a symbolic link.
final class SaveDirectoryTests: XCTestCase {
    var work = ""

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("braid-uci-save-\(getpid())").path
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work + "/config", withIntermediateDirectories: true)
        try "config gateway 'main'\n\toption server '198.18.10.2'\n".write(
            toFile: work + "/config/braid", atomically: true, encoding: .utf8)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: work)
    }

    func uci(_ args: String..., save: String) -> UCIResult {
        UCICommandLine.run(args, confDir: work + "/config", saveDir: save)
    }

    func testOwnDirectoryIsMadePrivateAndUsed() throws {
        let save = work + "/save"
        XCTAssertEqual(uci("set", "braid.main.port=4900", save: save).status, 0)
        var st = stat()
        XCTAssertEqual(lstat(save, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertEqual(uci("get", "braid.main.port", save: save).output, "4900\n")
        XCTAssertEqual(uci("commit", "braid", save: save).status, 0)
    }

    func testDirectoryOfAnotherUserIsRefused() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to give the directory to another user")
        let save = work + "/save"
        try FileManager.default.createDirectory(atPath: save, withIntermediateDirectories: false)
        // Another user's staged change, which a commit would write into root's configuration.
        try "braid.main.server='203.0.113.66'\n".write(toFile: save + "/braid", atomically: true, encoding: .utf8)
        XCTAssertEqual(chown(save, 65534, 65534), 0)
        for args in [["get", "braid.main.server"], ["set", "braid.main.port=1"], ["commit", "braid"]] {
            let r = UCICommandLine.run(args, confDir: work + "/config", saveDir: save)
            XCTAssertEqual(r.status, 4, "\(args)")
            XCTAssertEqual(r.errors, "uci: refusing the save directory \(save): it belongs to uid 65534, not to uid 0\n")
        }
        let config = try String(contentsOfFile: work + "/config/braid", encoding: .utf8)
        XCTAssertFalse(config.contains("203.0.113.66"))
    }

    func testWritableByOthersOrALinkIsRefused() throws {
        let save = work + "/save"
        try FileManager.default.createDirectory(atPath: save, withIntermediateDirectories: false)
        chmod(save, 0o1777)
        XCTAssertEqual(
            uci("set", "braid.main.port=1", save: save).errors,
            "uci: refusing the save directory \(save): group or others may write to it (mode 1777)\n")
        let link = work + "/link"
        XCTAssertEqual(symlink(save, link), 0)
        chmod(save, 0o700)
        XCTAssertEqual(
            uci("set", "braid.main.port=1", save: link).errors,
            "uci: refusing the save directory \(link): it is a symbolic link\n")
    }

    /// A symbolic link planted as the save file is never written through (root's commit used to
    /// truncate its target).
    func testSaveFileLinkIsNotFollowed() throws {
        let save = work + "/save"
        try FileManager.default.createDirectory(atPath: save, withIntermediateDirectories: false)
        chmod(save, 0o700)
        // The victim reads as a staged change, so commit gets as far as emptying the save file.
        let victim = work + "/victim"
        let text = "braid.main.port='2'\n"
        try text.write(toFile: victim, atomically: true, encoding: .utf8)
        XCTAssertEqual(symlink(victim, save + "/braid"), 0)
        XCTAssertEqual(uci("set", "braid.main.port=1", save: save).status, 1)
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), text)
        XCTAssertEqual(uci("commit", "braid", save: save).status, 1)
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), text)
    }
}
