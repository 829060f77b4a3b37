import BraidConfig
import Foundation
import XCTest

/// Golden cases for `braid uci`. Each directory under `Golden/` holds:
///
/// - `before/config/` and `before/save/`: the configuration and save directories to start from,
///   written the way OpenWrt's uci writes them;
/// - `script`: one `uci ...` command line per line (`#` lines are comments; `$CASE` is the case's
///   directory, for `-f` input files);
/// - `transcript`: each command echoed after `$ `, what it printed, its standard error with `! `
///   before each line (`\ no newline at end` after one without a line break), and `[exit N]` when
///   the status is not 0;
/// - `after/config/`, `after/save/` (and any directory a `-P $WORK/DIR` made): the directories
///   afterwards, file for file and byte for byte.
///
/// The commands run through `UCICommandLine.run`, the entry point of `braid uci`, on real files in
/// a temporary directory, so reading, staging, committing and reverting are tested as used.
/// `UCI_GOLDEN_UPDATE=1 swift test --filter BraidUCITests` rewrites the expected files (review the diff).
final class GoldenTests: XCTestCase {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    func testEveryCase() throws {
        let cases = try FileManager.default.contentsOfDirectory(atPath: Self.golden.path).sorted()
        XCTAssertGreaterThanOrEqual(cases.count, 15)
        for name in cases {
            try check(name)
        }
    }

    func check(_ name: String) throws {
        let fm = FileManager.default
        let dir = Self.golden.appendingPathComponent(name)
        let work = fm.temporaryDirectory.appendingPathComponent("braid-uci-\(name)-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: work) }
        for sub in ["config", "save"] {
            let from = dir.appendingPathComponent("before/\(sub)")
            let to = work.appendingPathComponent(sub)
            if fm.fileExists(atPath: from.path) {
                try fm.createDirectory(at: work, withIntermediateDirectories: true)
                try fm.copyItem(at: from, to: to)
            } else {
                try fm.createDirectory(at: to, withIntermediateDirectories: true)
            }
        }
        let script = try String(contentsOf: dir.appendingPathComponent("script"), encoding: .utf8)
        var transcript = ""
        for line in script.split(separator: "\n") where !line.hasPrefix("#") {
            let words = Self.split(String(line)).map {
                $0.replacingOccurrences(of: "$CASE", with: dir.path).replacingOccurrences(of: "$WORK", with: work.path)
            }
            XCTAssertEqual(words.first, "uci", "\(name): script lines start with uci")
            let result = UCICommandLine.run(
                Array(words.dropFirst()), confDir: work.appendingPathComponent("config").path,
                saveDir: work.appendingPathComponent("save").path)
            transcript += "$ \(line)\n" + result.output
            var lines = result.errors.split(separator: "\n", omittingEmptySubsequences: false)
            let partial = lines.removeLast()
            for e in lines { transcript += "! \(e)\n" }
            // uci prints some messages without a line break (`-f` naming a missing file).
            if !partial.isEmpty { transcript += "! \(partial)\n\\ no newline at end\n" }
            if result.status != 0 { transcript += "[exit \(result.status)]\n" }
        }
        let update = ProcessInfo.processInfo.environment["UCI_GOLDEN_UPDATE"] == "1"
        let expectedTranscript = dir.appendingPathComponent("transcript")
        if update {
            try transcript.write(to: expectedTranscript, atomically: true, encoding: .utf8)
            try? fm.removeItem(at: dir.appendingPathComponent("after"))
        } else {
            XCTAssertEqual(
                transcript, try String(contentsOf: expectedTranscript, encoding: .utf8), "\(name): transcript")
        }
        // Every directory the commands used (config, save, and any `-P $WORK/...` one) is compared.
        let used = try fm.contentsOfDirectory(atPath: work.path)
        let after = dir.appendingPathComponent("after")
        let recorded = (try? fm.contentsOfDirectory(atPath: after.path)) ?? []
        for sub in Set(used + recorded).sorted() {
            let actual = work.appendingPathComponent(sub)
            let expected = after.appendingPathComponent(sub)
            let files = ((try? fm.contentsOfDirectory(atPath: actual.path)) ?? []).sorted()
            if update {
                try fm.createDirectory(at: expected, withIntermediateDirectories: true)
                for file in files {
                    try fm.copyItem(at: actual.appendingPathComponent(file), to: expected.appendingPathComponent(file))
                }
                continue
            }
            let wanted = ((try? fm.contentsOfDirectory(atPath: expected.path)) ?? []).sorted()
            XCTAssertEqual(files, wanted, "\(name): files in \(sub)")
            for file in files where wanted.contains(file) {
                XCTAssertEqual(
                    try String(contentsOf: actual.appendingPathComponent(file), encoding: .utf8),
                    try String(contentsOf: expected.appendingPathComponent(file), encoding: .utf8),
                    "\(name): \(sub)/\(file)")
            }
        }
    }

    /// Splits a script line the way a shell would: white space between words, single quotes
    /// literal, double quotes literal but for `\"`, a backslash outside quotes escaping one character.
    static func split(_ line: String) -> [String] {
        splitComplete(line) ?? []
    }

    /// As `split`, or nil while a quote is still open (the line goes on in the next one).
    static func splitComplete(_ line: String) -> [String]? {
        var words: [String] = []
        var word = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for c in line {
            if escaped {
                word.append(c)
                escaped = false
            } else if let q = quote {
                if c == q {
                    quote = nil
                } else if c == "\\" && q == "\"" {
                    escaped = true
                } else {
                    word.append(c)
                }
            } else if c == "'" || c == "\"" {
                quote = c
                inWord = true
            } else if c == "\\" {
                escaped = true
                inWord = true
            } else if c == " " || c == "\t" {
                if inWord { words.append(word) }
                word = ""
                inWord = false
            } else {
                word.append(c)
                inWord = true
            }
        }
        if quote != nil || escaped { return nil }
        if inWord { words.append(word) }
        return words
    }
}
