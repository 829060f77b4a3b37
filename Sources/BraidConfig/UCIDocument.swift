/// The value of a UCI option: one string (`option`) or an ordered list (`list`).
public enum UCIValue: Equatable, Sendable {
    case string(String)
    case list([String])
}

/// A UCI package file as a lossless document.
///
/// The semantic part (sections, their options, in order) is what uci itself sees. Beside it the
/// document keeps the source text each section came from, so that `render()` can write untouched
/// sections back byte for byte (comments, blank lines, quoting style and all) and rewrite only the
/// sections and options that changed, in the style uci writes: a blank line before each `config`,
/// options indented by a tab, values in single quotes with `'\''` for a quote.
public struct UCIDocument: Equatable, Sendable {
    /// One `config` section. Anonymous sections carry the `cfgNNHHHH` name uci generates for them.
    public struct Section: Equatable, Sendable {
        public var type: String
        public var name: String
        public var isAnonymous: Bool
        public var options: [Option]
        /// Line of the `config` statement in the parsed text; 0 for a section made since.
        public var line: Int
        /// Which parsed section this is, through renames and moves; nil for a section made since.
        var origin: Int?

        public func option(_ name: String) -> Option? {
            options.first { $0.name == name }
        }
    }

    public struct Option: Equatable, Sendable {
        public var name: String
        public var value: UCIValue
        /// Line of the statement that last set this option (for a list, its first item).
        public var line: Int
    }

    /// The package name (the file's name in the configuration directory).
    public var package: String
    public var sections: [Section]

    /// How many sections uci has allocated in this package: the counter in generated names. It
    /// only grows, as in uci, so a name is never handed out twice while the package is loaded.
    var allocatedSections = 0
    /// Text before the first section (comments, a `package` line) and after the last statement.
    var header = ""
    var trailer = ""
    /// The sections as parsed, keyed by `Section.origin`.
    var originals: [Int: OriginalSection] = [:]
    /// The parsed text was empty: write it the way uci writes a new file.
    var startedEmpty = true

    public init(package: String) {
        self.package = package
        self.sections = []
    }

    public func section(named name: String) -> Section? {
        sections.first { $0.name == name }
    }

    func sectionIndex(named name: String) -> Int? {
        sections.firstIndex { $0.name == name }
    }
}

/// What a section looked like when it was parsed, and the text it came from.
struct OriginalSection: Equatable, Sendable {
    /// One statement's worth of source: a `config` line, an `option` line or one `list` item.
    struct Piece: Equatable, Sendable {
        enum Kind: Equatable, Sendable {
            case option(String, String)
            case listItem(String, String)
        }
        var kind: Kind
        /// Comments and blank lines just above the statement; they travel with it.
        var leading: String
        /// The statement's own line(s); nil when it shared a line with other statements.
        var text: String?
    }

    var type: String
    var name: String
    var isAnonymous: Bool
    var options: [UCIDocument.Option]
    var leading: String
    var configText: String?
    var pieces: [Piece]
    /// The whole section from its leading comments to its last line; nil when it cannot be
    /// cut out of the file on its own (it shared a line with another section or was declared twice).
    var verbatim: String?
}

// MARK: - Writing

extension UCIDocument {
    /// The file text: untouched sections verbatim, changed ones rewritten in uci's style.
    public func render() -> String {
        if startedEmpty { return sections.isEmpty ? "" : export(header: false, nameAnonymous: false) }
        var out = header
        for section in sections {
            if let id = section.origin, let original = originals[id] {
                if let verbatim = original.verbatim, section.hasSameContent(as: original) {
                    out += verbatim
                } else {
                    out += Self.rewrite(section, from: original, after: out)
                }
            } else {
                Self.endLine(&out)
                out += "\n" + Self.render(section)
            }
        }
        out += trailer
        return out
    }

    /// The package as `uci export` prints it (and as uci writes a file, with `header` false).
    public func export(header: Bool, nameAnonymous: Bool) -> String {
        var out = header ? "package \(Self.escape(package))\n" : ""
        for section in sections {
            out += "\n" + Self.render(section, nameAnonymous: nameAnonymous)
        }
        return out + "\n"
    }

    static func render(_ section: Section, nameAnonymous: Bool = false) -> String {
        var out = configLine(section, nameAnonymous: nameAnonymous)
        for option in section.options {
            out += render(option)
        }
        return out
    }

    static func configLine(_ section: Section, nameAnonymous: Bool = false) -> String {
        var out = "config \(escape(section.type))"
        if !section.isAnonymous || nameAnonymous { out += " '\(escape(section.name))'" }
        return out + "\n"
    }

    static func render(_ option: Option) -> String {
        switch option.value {
        case .string(let v): return "\toption \(escape(option.name)) '\(escape(v))'\n"
        case .list(let items): return items.map { listLine(option.name, $0) }.joined()
        }
    }

    static func listLine(_ name: String, _ item: String) -> String {
        "\tlist \(escape(name)) '\(escape(item))'\n"
    }

    /// uci's quoting: the text goes between single quotes, and a quote becomes `'\''`.
    public static func escape(_ s: String) -> String {
        s.replacingAll("'", with: "'\\''")
    }

    /// A changed section: its leading comments, its `config` line as it was if type and name did
    /// not change, each option as it was if its value did not change, the rest in uci's style.
    static func rewrite(_ section: Section, from original: OriginalSection, after text: String) -> String {
        var out = original.leading
        let sameHead =
            section.type == original.type && section.name == original.name
            && section.isAnonymous == original.isAnonymous
        if sameHead, let head = original.configText {
            out += head
        } else {
            endLine(&out, context: text)
            out += configLine(section)
        }
        var used = [Bool](repeating: false, count: original.pieces.count)
        func take(_ kind: OriginalSection.Piece.Kind) -> OriginalSection.Piece? {
            guard let i = original.pieces.indices.first(where: { !used[$0] && original.pieces[$0].kind == kind })
            else { return nil }
            used[i] = true
            return original.pieces[i]
        }
        // Comments above an option whose value changed stay with it.
        func leading(of name: String) -> String {
            guard
                let i = original.pieces.indices.first(where: {
                    guard !used[$0] else { return false }
                    switch original.pieces[$0].kind {
                    case .option(let n, _), .listItem(let n, _): return n == name
                    }
                })
            else { return "" }
            used[i] = true
            return original.pieces[i].leading
        }
        // One statement: its original line (and the comments above it) when it is unchanged, else
        // the comments that were above the option and a line written anew.
        func emit(_ kind: OriginalSection.Piece.Kind, _ name: String, _ fresh: () -> String) {
            if let piece = take(kind), let line = piece.text {
                out += piece.leading
                endLine(&out, context: text)
                out += line
            } else {
                out += leading(of: name)
                endLine(&out, context: text)
                out += fresh()
            }
        }
        for option in section.options {
            switch option.value {
            case .string(let v):
                emit(.option(option.name, v), option.name) { render(option) }
            case .list(let items):
                for item in items {
                    emit(.listItem(option.name, item), option.name) { listLine(option.name, item) }
                }
            }
        }
        return out
    }

    /// Text from the file may end without a newline; what we append after it must start a line.
    static func endLine(_ out: inout String, context: String = "") {
        if out.isEmpty {
            if !context.isEmpty && !context.hasSuffix("\n") { out += "\n" }
        } else if !out.hasSuffix("\n") {
            out += "\n"
        }
    }
}

extension UCIDocument.Section {
    func hasSameContent(as original: OriginalSection) -> Bool {
        type == original.type && name == original.name && isAnonymous == original.isAnonymous
            && options.count == original.options.count
            && zip(options, original.options).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        guard contains(target) else { return self }
        var out = ""
        for c in self {
            if c == target { out += replacement } else { out.append(c) }
        }
        return out
    }
}
