/// A syntax error the way uci reports one: `Parse error (REASON) at line N, byte M`, where the line
/// counts the lines read so far and the byte is the offset in the statement's text where reading stopped.
public struct UCIParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var line: Int
    public var byte: Int
    /// The word at fault (a command, a name, a type), for messages that quote it; uci's own
    /// message does not.
    public var word: String?
    /// The line of the file the error is on, counting a last line without a line break (which
    /// uci's count leaves out).
    public var fileLine: Int

    public var description: String { "Parse error (\(reason)) at line \(line), byte \(byte)" }
}

extension UCIDocument {
    /// Parses a package file the way uci loads one. `package` lines are checked and otherwise
    /// ignored: the package is named by the file. With `strict` false a bad line is skipped and
    /// reported in `warnings` instead of ending the parse (uci's `-S`).
    public static func parse(
        _ text: String, package: String, strict: Bool = true, warnings: inout [UCIParseError]
    ) throws -> UCIDocument {
        var parser = UCITextParser(text: text, strict: strict, importing: false)
        parser.documents = [UCIDocument(package: package)]
        try parser.run()
        warnings = parser.warnings
        return parser.documents[0]
    }

    public static func parse(_ text: String, package: String) throws -> UCIDocument {
        var warnings: [UCIParseError] = []
        return try parse(text, package: package, strict: true, warnings: &warnings)
    }

    /// Parses `uci import` input that names its packages with `package NAME` lines.
    static func parseImport(_ text: String, strict: Bool, warnings: inout [UCIParseError]) throws -> [UCIDocument] {
        var parser = UCITextParser(text: text, strict: strict, importing: true)
        try parser.run()
        warnings = parser.warnings
        return parser.documents
    }
}

/// uci's grammar, read the way uci reads it: one line at a time into a buffer that a quoted value
/// or a trailing backslash extends with the next line, commands split by `;`, words bare or
/// quoted, `#` ending the line outside quotes. Values are decoded in place in that buffer, which is
/// what makes the byte offsets in errors match uci's.
struct UCITextParser {
    enum Failure: Error {
        case parse(UCIParseError)
        case duplicatePackage(String)
    }

    let source: [UInt8]
    let strict: Bool
    /// `uci import` without a package name: `package` lines start packages.
    let importing: Bool
    var documents: [UCIDocument] = []
    var warnings: [UCIParseError] = []

    // The line buffer and the reading position in it.
    var buf: [UInt8] = []
    var pos = 0
    var next = 0
    var line = 0
    /// The last line read had no line break (the end of a file without one): uci does not count it.
    var lastLineUnterminated = false

    /// The section that `option` and `list` statements go to.
    var current: Int?
    /// What the current chunk (one buffer: a line, or more when a quote or a backslash joins
    /// lines) produced: the sections it touched and one entry per statement.
    var chunkSections = Set<Int>()
    var chunkPieces: [PieceRef] = []
    /// Comments, blank lines and statements without effect since the last statement, and where
    /// they start in the source (below zero: see `configCommand`).
    var pending = ""
    var pendingStart: Int?
    /// Each parsed section's extent in the source, and the sections that can be cut out whole.
    var ranges: [Int: (start: Int, end: Int)] = [:]
    var whole = Set<Int>()
    var nextOrigin = 0
    /// The file line the current chunk starts on.
    var statementLine = 0

    enum PieceRef {
        case config(Int)
        case piece(Int, Int)
        /// A statement that counted but owns no text: a second `config` for a section already seen.
        case dropped
        /// A statement with no effect (`package`, an empty option): its text stays as trivia.
        case ignored
    }

    init(text: String, strict: Bool, importing: Bool) {
        self.source = Array(text.utf8)
        self.strict = strict
        self.importing = importing
    }

    // MARK: Reading

    var cur: UInt8 { pos < buf.count ? buf[pos] : 0 }
    func at(_ i: Int) -> UInt8 { i < buf.count ? buf[i] : 0 }

    /// Reads the next line of the source into the buffer at `offset`, dropping what was there.
    mutating func readLine(at offset: Int) {
        buf.removeSubrange(min(offset, buf.count)...)
        guard next < source.count else { return }
        var end = next
        while end < source.count && source[end] != 0x0a { end += 1 }
        lastLineUnterminated = end == source.count
        if end < source.count {
            end += 1
            line += 1
        }
        buf += source[next..<end]
        next = end
    }

    func fail(_ reason: String, _ word: String? = nil) -> Failure {
        let physical = line + (lastLineUnterminated ? 1 : 0)
        return .parse(UCIParseError(reason: reason, line: line, byte: pos, word: word, fileLine: max(physical, 1)))
    }

    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0d) }

    mutating func skipWhitespace() {
        while cur != 0 && Self.isSpace(cur) { pos += 1 }
    }

    /// A backslash: true when the next character is to be taken literally; false when it ended
    /// the line and the next line was read in its place.
    mutating func backslash() -> Bool {
        pos += 1
        if cur == 0 || cur == 0x0a || (cur == 0x0d && at(pos + 1) == 0x0a && at(pos + 2) == 0) {
            readLine(at: pos)
            return false
        }
        return true
    }

    mutating func copy(_ target: inout Int) {
        buf[target] = buf[pos]
        target += 1
        pos += 1
    }

    mutating func quoted(_ target: inout Int, double: Bool) throws {
        pos += 1
        while true {
            let c = cur
            if c == (double ? 0x22 : 0x27) {
                pos += 1
                return
            }
            if c == 0 {
                readLine(at: pos)
                if cur == 0 { throw fail(double ? "EOF with unterminated \"" : "EOF with unterminated '") }
                continue
            }
            if double && c == 0x5c && !backslash() { continue }
            copy(&target)
        }
    }

    /// One word, quoted or bare, decoded into the buffer at `start`.
    mutating func word(_ start: Int) throws {
        var target = start
        var advance = true
        scan: repeat {
            switch cur {
            case 0x27: try quoted(&target, double: false)
            case 0x22: try quoted(&target, double: true)
            case 0x23:
                buf[pos] = 0
                break scan
            case 0: break scan
            case 0x3b:
                advance = false
                break scan
            case 0x5c:
                if !backslash() { continue scan }
                copy(&target)
            default: copy(&target)
            }
        } while cur != 0 && !Self.isSpace(cur)
        if cur != 0 && advance { pos += 1 }
        // The end of the buffer is its own terminator, as in C.
        if target < buf.count { buf[target] = 0 }
    }

    func string(at i: Int) -> String {
        var end = i
        while end < buf.count && buf[end] != 0 { end += 1 }
        return String(decoding: buf[i..<end], as: UTF8.self)
    }

    /// The next argument of a command: "" when there is none.
    mutating func argument(required: Bool, name: Bool = false, package: Bool = false) throws -> String {
        skipWhitespace()
        let start = pos
        if cur == 0x3b {
            buf[pos] = 0
            pos += 1
        } else {
            try word(start)
        }
        let value = string(at: start)
        if value.isEmpty {
            if required { throw fail("insufficient arguments") }
            return value
        }
        if name && !UCINames.isValid(value, name: true, package: package) {
            throw fail("invalid character in name field", value)
        }
        return value
    }

    mutating func endOfCommand() throws {
        skipWhitespace()
        if try !argument(required: false).isEmpty && strict { throw fail("too many arguments") }
    }

    /// Moves past the command word, which strtok ended with a NUL.
    mutating func skipCommand(_ what: String) throws {
        var end = pos
        while end < buf.count && buf[end] != 0 { end += 1 }
        let add = end - pos + 1
        if pos + add > buf.count { throw fail("\(what) without name") }
        pos += add
    }

    /// strtok(3) on the rest of the buffer with " \t": the next command word, NUL-terminated in place.
    mutating func commandWord() -> String? {
        var start = pos
        while start < buf.count && (buf[start] == 0x20 || buf[start] == 0x09) { start += 1 }
        if start >= buf.count || buf[start] == 0 { return nil }
        var end = start
        while end < buf.count && buf[end] != 0 && buf[end] != 0x20 && buf[end] != 0x09 { end += 1 }
        let word = String(decoding: buf[start..<end], as: UTF8.self)
        if end < buf.count && buf[end] != 0 { buf[end] = 0 }
        return word
    }

    // MARK: Commands

    mutating func run() throws {
        while next < source.count {
            let chunkStart = next
            statementLine = line + 1
            pos = 0
            buf = []
            readLine(at: 0)
            chunkSections = []
            chunkPieces = []
            do {
                if !buf.isEmpty { try parseLine() }
            } catch Failure.parse(let error) {
                if strict { throw error }
                warnings.append(error)
            }
            finishChunk(start: chunkStart, end: next)
        }
        if !documents.isEmpty {
            // With no section at all the whole text is kept as the header.
            if documents[documents.count - 1].sections.isEmpty {
                documents[documents.count - 1].trailer = ""
                documents[documents.count - 1].header = pending
            } else {
                documents[documents.count - 1].trailer = pending
            }
        }
        finishDocument()
    }

    mutating func parseLine() throws {
        skipWhitespace()
        while let word = commandWord() {
            switch word {
            case _ where word.hasPrefix("#"): return
            case "p", "package": try packageCommand()
            case "c", "config": try configCommand()
            case "o", "option": try optionCommand(list: false)
            case "l", "list": try optionCommand(list: true)
            default: throw fail("invalid command", word)
            }
        }
    }

    mutating func packageCommand() throws {
        try skipCommand("package")
        let name = try argument(required: true, name: true, package: true)
        try endOfCommand()
        chunkPieces.append(.ignored)
        guard importing else { return }
        finishDocument()
        if documents.contains(where: { $0.package == name }) { throw Failure.duplicatePackage(name) }
        documents.append(UCIDocument(package: name))
        current = nil
    }

    mutating func configCommand() throws {
        if documents.isEmpty { throw fail("attempting to import a file without a package name") }
        try skipCommand("config")
        let type = try argument(required: true)
        if !UCINames.isValidType(type) { throw fail("invalid character in type field", type) }
        let name = try argument(required: false, name: true)
        try endOfCommand()
        let d = documents.count - 1
        if !name.isEmpty, let existing = documents[d].sectionIndex(named: name) {
            if strict && documents[d].sections[existing].type != type {
                throw fail("section of different type overwrites prior section with same name")
            }
            documents[d].sections[existing].type = type
            // Declared again right below itself it still reads as one piece of text; with another
            // section in between it no longer does.
            if current != existing, let id = documents[d].sections[existing].origin { whole.remove(id) }
            current = existing
            if let id = documents[d].sections[existing].origin {
                chunkSections.insert(id)
                documents[d].originals[id]?.type = type
            }
            chunkPieces.append(.dropped)
            return
        }
        // Above the first section, the comments just over it (and the blank line before them) are
        // its own; the rest is the file's header, kept whatever happens to the sections.
        if documents[d].sections.isEmpty && chunkPieces.isEmpty && !importing {
            let (header, leading) = Self.splitHeader(pending)
            documents[d].header = header
            pending = leading
            pendingStart = leading.isEmpty ? nil : -1 - leading.utf8.count
        }
        let index = documents[d].allocateSection(type: type, name: name.isEmpty ? nil : name)
        let id = nextOrigin
        nextOrigin += 1
        documents[d].sections[index].origin = id
        documents[d].sections[index].line = statementLine
        let section = documents[d].sections[index]
        documents[d].originals[id] = OriginalSection(
            type: type, name: section.name, isAnonymous: section.isAnonymous, options: [],
            leading: chunkPieces.isEmpty ? pending : "", configText: nil, pieces: [], verbatim: nil)
        ranges[id] = (start: chunkPieces.isEmpty ? (pendingStart ?? -1) : -1, end: 0)
        whole.insert(id)
        if chunkPieces.isEmpty { takePending() }
        current = index
        chunkSections.insert(id)
        chunkPieces.append(.config(id))
    }

    mutating func optionCommand(list: Bool) throws {
        guard let index = current, !documents.isEmpty else {
            throw fail("option/list command found before the first section", list ? "list" : "option")
        }
        try skipCommand("option")
        let name = try argument(required: true, name: true)
        let value = try argument(required: false)
        try endOfCommand()
        let d = documents.count - 1
        // uci sets an option to "" by removing nothing: the statement has no effect.
        guard list || !value.isEmpty else {
            chunkPieces.append(.ignored)
            return
        }
        documents[d].sections[index].parsed(name: name, value: value, list: list, line: statementLine)
        guard let id = documents[d].sections[index].origin else { return }
        let piece = OriginalSection.Piece(
            kind: list ? .listItem(name, value) : .option(name, value),
            leading: chunkPieces.isEmpty ? pending : "", text: nil)
        if chunkPieces.isEmpty { takePending() }
        documents[d].originals[id]?.pieces.append(piece)
        chunkSections.insert(id)
        chunkPieces.append(.piece(id, documents[d].originals[id]!.pieces.count - 1))
    }

    /// Splits the text above the first section: the comment lines directly over it and the blank
    /// lines above those go with the section, what comes before is the header.
    static func splitHeader(_ text: String) -> (header: String, leading: String) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0 + "\n" }
        if text.hasSuffix("\n") {
            lines.removeLast()
        } else if let last = lines.popLast() {
            lines.append(last.dropLast())
        }
        func isBlank(_ l: Substring) -> Bool { l.allSatisfy { $0.isWhitespace } }
        func isComment(_ l: Substring) -> Bool { l.drop { $0 == " " || $0 == "\t" }.hasPrefix("#") }
        var cut = lines.count
        while cut > 0 && isComment(lines[cut - 1]) { cut -= 1 }
        while cut > 0 && isBlank(lines[cut - 1]) { cut -= 1 }
        return (lines[..<cut].joined(), lines[cut...].joined())
    }

    mutating func takePending() {
        pending = ""
        pendingStart = nil
    }

    /// Gives the chunk's text to the one statement it held, or to the trivia when it held none
    /// that counts; a chunk shared by several sections keeps them from being copied verbatim.
    mutating func finishChunk(start: Int, end: Int) {
        let text = String(decoding: source[start..<end], as: UTF8.self)
        guard !documents.isEmpty else { return }
        let d = documents.count - 1
        let counted = chunkPieces.filter { if case .ignored = $0 { return false } else { return true } }
        if counted.isEmpty {
            if pendingStart == nil { pendingStart = start }
            pending += text
            return
        }
        // A section starting on this chunk starts where the chunk (or its leading text) does.
        // Negative: the section's leading text is that many bytes (plus one) before its line.
        if case .config(let id) = chunkPieces[0], let s = ranges[id]?.start, s < 0 {
            ranges[id]?.start = start + s + 1
        }
        if chunkPieces.count == 1 {
            switch chunkPieces[0] {
            case .config(let id): documents[d].originals[id]?.configText = text
            case .piece(let id, let i): documents[d].originals[id]?.pieces[i].text = text
            case .ignored, .dropped: break
            }
        } else if chunkSections.count > 1 {
            // Statements of two sections on one line: neither can be copied out on its own.
            whole.subtract(chunkSections)
        }
        for id in chunkSections { ranges[id]?.end = end }
    }

    mutating func finishDocument() {
        guard !documents.isEmpty else { return }
        let d = documents.count - 1
        var doc = documents[d]
        for section in doc.sections {
            guard let id = section.origin, var original = doc.originals[id] else { continue }
            original.options = section.options
            original.type = section.type
            if whole.contains(id), let r = ranges[id], r.start >= 0, r.end >= r.start {
                original.verbatim = String(decoding: source[r.start..<r.end], as: UTF8.self)
            }
            doc.originals[id] = original
        }
        doc.startedEmpty = importing || source.isEmpty
        documents[d] = doc
    }
}

extension UCIDocument {
    /// Adds a section at the end, as uci allocates one; anonymous ones get uci's generated name:
    /// `cfg`, the package's section counter in two hex digits, and a hash of the type in four.
    @discardableResult
    mutating func allocateSection(type: String, name: String?) -> Int {
        allocatedSections += 1
        let generated = name ?? Self.generatedName(counter: allocatedSections, type: type)
        sections.append(Section(type: type, name: generated, isAnonymous: name == nil, options: [], line: 0))
        return sections.count - 1
    }

    static func generatedName(counter: Int, type: String) -> String {
        // Bernstein's hash (h * 33 + c from 5381) over the type, kept to 31 bits, as uci computes it.
        var hash: UInt32 = 5381
        for c in type.utf8 { hash = hash &* 33 &+ UInt32(bitPattern: Int32(Int8(bitPattern: c))) }
        hash &= 0x7fff_ffff
        return "cfg" + hex(counter, width: 2) + hex(Int(hash % 65536), width: 4)
    }

    static func hex(_ n: Int, width: Int) -> String {
        let s = String(n, radix: 16)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}

extension UCIDocument.Section {
    /// An `option` or `list` statement read from a file.
    mutating func parsed(name: String, value: String, list: Bool, line: Int) {
        let i = options.firstIndex { $0.name == name }
        if list {
            if let i, case .list(var items) = options[i].value {
                items.append(value)
                options[i].value = .list(items)
                return
            }
            if let i, case .string(let old) = options[i].value {
                options[i] = .init(name: name, value: .list([old, value]), line: options[i].line)
                return
            }
            options.append(.init(name: name, value: .list([value]), line: line))
        } else if let i {
            // Set again further down, an option keeps its place (uci_set replaces it in place).
            if options[i].value != .string(value) { options[i] = .init(name: name, value: .string(value), line: line) }
        } else {
            options.append(.init(name: name, value: .string(value), line: line))
        }
    }
}

/// uci's rules for names: section and option names are letters, digits and `_`; package names may
/// also hold `-`; section types may hold any printable ASCII character but space.
public enum UCINames {
    public static func isValid(_ s: String, name: Bool, package: Bool = false) -> Bool {
        guard !s.isEmpty else { return false }
        for c in s.utf8 {
            let alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
            if alnum || c == 0x5f { continue }
            if c == 0x2d && package { continue }
            if name || c < 33 || c > 126 { return false }
        }
        return true
    }

    public static func isValidName(_ s: String) -> Bool { isValid(s, name: true) }
    public static func isValidType(_ s: String) -> Bool { isValid(s, name: false) }
    /// Package names are file names in the configuration directory: kept to letters, digits, `_` and `-`.
    public static func isValidPackage(_ s: String) -> Bool { isValid(s, name: true, package: true) }

    /// Values may hold tabs and line breaks but no other control character (uci_validate_text).
    public static func isValidText(_ s: String) -> Bool {
        s.utf8.allSatisfy { $0 >= 32 || $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }
    }
}
