import BraidConfig
import Glibc
import XCTest

/// OpenWrt's own uci, recorded: `Recorded/expected/` holds what uci printed, its exit status and
/// the files it wrote, command by command, on the fixtures in `Recorded/fixtures/` (see
/// `Recorded/README.md` for the uci it came from). Each case is replayed through
/// `UCICommandLine.run`, the entry point of `braid uci`, in a fresh directory, as uci was run:
/// standard output, standard error and the exit status must be the same byte for byte; a file
/// written by `commit` must say the same to a uci reader (braid keeps the untouched text of a file
/// where uci rewrites it, so comments and quoting may differ, the sections and options in their
/// order may not).
final class RecordedUCITests: XCTestCase {
    static var root: String {
        let file = "\(#filePath)"
        return String(file[..<(file.lastIndex(of: "/") ?? file.startIndex)]) + "/Recorded"
    }

    func testEveryRecordedCase() throws {
        let cases = try XCTUnwrap(UCILocalFiles().list(Self.root + "/expected")).filter { $0.hasSuffix(".txt") }
        XCTAssertGreaterThanOrEqual(cases.count, 39)
        for name in cases {
            try replay(name)
        }
    }

    /// One command as the record shows it, and what uci did.
    struct Step {
        enum Kind {
            case fixture(name: String, package: String)
            case madeFile(path: String, text: String)
            case command(arguments: [String], stdin: String, stdout: String, stderr: String, status: Int32)
            case file(path: String, text: String)
        }
        var kind: Kind
        var line: Int
    }

    func replay(_ name: String) throws {
        let text = try XCTUnwrap(UCILocalFiles().read(Self.root + "/expected/" + name))
        let steps = try Self.steps(text, case: name)
        XCTAssertFalse(steps.isEmpty, "\(name): no steps read")

        var template = Array("/tmp/braid-uci-recorded-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let work = String(cString: try XCTUnwrap(made))
        defer { Self.removeTree(work) }
        for dir in ["conf", "save", ".default-save", ".override"] { mkdir(work + "/" + dir, 0o700) }
        // uci ran in the case's directory with relative paths (`-c conf -t save`).
        var previous = [CChar](repeating: 0, count: 4096)
        XCTAssertNotNil(getcwd(&previous, previous.count))
        XCTAssertEqual(chdir(work), 0)
        defer { chdir(previous) }

        let files = UCILocalFiles()
        for step in steps {
            let at = "\(name):\(step.line)"
            switch step.kind {
            case .fixture(let fixture, let package):
                let content = try XCTUnwrap(files.read(Self.root + "/fixtures/" + fixture), at)
                try files.replaceAtomically(work + "/conf/" + package, content)
            case .madeFile(let path, let content):
                if let slash = path.lastIndex(of: "/") { mkdir(work + "/" + path[..<slash], 0o700) }
                try files.replaceAtomically(work + "/" + path, content)
            case .command(let arguments, let stdin, let stdout, let stderr, let status):
                // The defaults uci would also read (/tmp/.uci, /var/run/uci) are empty directories here.
                let result = UCICommandLine.run(
                    arguments, confDir: work + "/.no-conf", overrideDir: work + "/.override",
                    saveDir: work + "/.default-save", program: "uci", standardInput: stdin)
                XCTAssertEqual(result.output, stdout, "\(at): stdout of uci \(arguments)")
                XCTAssertEqual(result.errors, stderr, "\(at): stderr of uci \(arguments)")
                XCTAssertEqual(result.status, status, "\(at): exit status of uci \(arguments)")
            case .file(let path, let expected):
                let actual = try files.read(work + "/" + path)
                switch expected {
                case "(missing)\n": XCTAssertNil(actual, "\(at): \(path) should not exist")
                case "(empty)\n": XCTAssertEqual(actual, "", "\(at): \(path) should be empty")
                default: XCTAssertEqual(Self.meaning(actual ?? "(missing)"), Self.meaning(expected), "\(at): \(path)")
                }
            }
        }
    }

    /// A file as uci reads it: its sections and options in order, written out the way uci writes
    /// them. Text that does not parse is compared as it is.
    static func meaning(_ text: String) -> String {
        guard let document = try? UCIDocument.parse(text, package: "recorded") else { return text }
        return document.export(header: false, nameAnonymous: false)
    }

    // MARK: Reading a record

    /// Reads a case file written by the recording script: `# fixture: F -> conf/P` lines, `$ uci`
    /// commands followed by `--- stdin`, `--- stdout`, `--- stderr` and `--- exit N` blocks, and
    /// `=== file P` / `=== made file P` blocks closed by `=== end`. A block's text ends with a line
    /// break unless its last line is `\ no newline at end`.
    static func steps(_ text: String, case name: String) throws -> [Step] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var steps: [Step] = []
        var i = 0
        // The lines up to (not including) the first one that `stop` accepts, as a block's text.
        func block(until stop: (String) -> Bool) -> String {
            var body: [String] = []
            while i < lines.count && !stop(lines[i]) {
                body.append(lines[i])
                i += 1
            }
            if body.last == "\\ no newline at end" {
                body.removeLast()
                return body.joined(separator: "\n")
            }
            return body.map { $0 + "\n" }.joined()
        }
        while i < lines.count {
            let line = lines[i]
            let number = i + 1
            if line.hasPrefix("# fixture: "), let arrow = line.range(of: " -> conf/") {
                let fixture = String(line[line.index(line.startIndex, offsetBy: 11)..<arrow.lowerBound])
                let package = String(line[arrow.upperBound...])
                steps.append(Step(kind: .fixture(name: fixture, package: package), line: number))
                i += 1
            } else if line.hasPrefix("=== made file ") || line.hasPrefix("=== file ") {
                let made = line.hasPrefix("=== made file ")
                let path = String(line.dropFirst(made ? 14 : 9))
                i += 1
                let body = block { $0 == "=== end" }
                i += 1
                let kind: Step.Kind = made ? .madeFile(path: path, text: body) : .file(path: path, text: body)
                steps.append(Step(kind: kind, line: number))
            } else if line.hasPrefix("$ uci") {
                // A quoted argument may hold line breaks: read on until the quotes close.
                var commandLine = String(line.dropFirst(2))
                var words = GoldenTests.splitComplete(commandLine)
                i += 1
                while words == nil && i < lines.count {
                    commandLine += "\n" + lines[i]
                    words = GoldenTests.splitComplete(commandLine)
                    i += 1
                }
                let arguments = Array(try XCTUnwrap(words, "\(name):\(number): unterminated quote").dropFirst())
                var stdin = ""
                if lines[i] == "--- stdin" {
                    i += 1
                    stdin = block { $0 == "--- stdout" }
                }
                XCTAssertEqual(lines[i], "--- stdout", "\(name):\(i + 1)")
                i += 1
                let stdout = block { $0 == "--- stderr" }
                i += 1
                let stderr = block { $0.hasPrefix("--- exit ") }
                let status = try XCTUnwrap(Int32(lines[i].dropFirst(9)), "\(name):\(i + 1): exit status")
                i += 1
                let kind = Step.Kind.command(
                    arguments: arguments, stdin: stdin, stdout: stdout, stderr: stderr, status: status)
                steps.append(Step(kind: kind, line: number))
            } else {
                i += 1
            }
        }
        return steps
    }

    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            if let dir = opendir(path) {
                var names: [String] = []
                while let entry = readdir(dir) {
                    let name = withUnsafePointer(to: entry.pointee.d_name) {
                        $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                    }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(dir)
                for name in names { removeTree(path + "/" + name) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
