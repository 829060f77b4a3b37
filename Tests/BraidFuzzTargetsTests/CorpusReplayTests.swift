import BraidFuzzTargets
import Foundation
import XCTest

/// Replays every seed of `Fuzz/Corpus/<target>/` through the function its fuzzer calls, so the
/// corpus is exercised on every test run. Seeds named `valid-*` must be accepted: they are the
/// fuzzer's starting points into the deeper code, and a format change that breaks them must show.
final class CorpusReplayTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Corpus")

    func replay(_ target: String, _ run: ([UInt8]) -> FuzzOutcome, file: StaticString = #filePath, line: UInt = #line)
        throws
    {
        let directory = Self.corpus.appendingPathComponent(target)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertGreaterThanOrEqual(
            names.count, 5, "seed corpus \(directory.path) is nearly empty", file: file, line: line)
        var valid = 0
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
            let outcome = run(bytes)
            if name.hasPrefix("valid-") {
                valid += 1
                XCTAssertEqual(outcome, .accepted, "\(target)/\(name)", file: file, line: line)
            } else if name.hasPrefix("bad-") {
                XCTAssertEqual(outcome, .refused, "\(target)/\(name)", file: file, line: line)
            }
        }
        XCTAssertGreaterThan(valid, 0, "no valid-* seed in \(target)", file: file, line: line)
    }

    func testConvertCorpus() throws { try replay("convert", FuzzConvert.run) }
    func testControlCorpus() throws { try replay("control", FuzzControl.run) }
    func testUCICorpus() throws { try replay("uci", FuzzUCI.run) }
}
