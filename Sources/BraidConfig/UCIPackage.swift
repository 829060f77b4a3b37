/// A UCI package file as the daemons read it: sections in file order with their options.
/// Every entry keeps its line so that validation errors can point at it.
public struct UCIPackage: Equatable, Sendable {
    public var file: String
    public var sections: [UCISection]

    public init(file: String, sections: [UCISection]) {
        self.file = file
        self.sections = sections
    }

    /// Sections of one type, in file order.
    public func sections(ofType type: String) -> [UCISection] {
        sections.filter { $0.type == type }
    }
}

public struct UCISection: Equatable, Sendable {
    public var type: String
    /// nil for an anonymous section (`config uplink` without a name).
    public var name: String?
    public var line: Int
    public var options: [UCIOption]

    /// How errors name this section: `name`, or uci's `@type[index]` for anonymous ones.
    public var label: String

    public func option(_ name: String) -> UCIOption? {
        options.last { $0.name == name }
    }
}

public struct UCIOption: Equatable, Sendable {
    public var name: String
    public var values: [String]
    public var isList: Bool
    public var line: Int
    /// Written both as `option NAME` and as `list NAME` in one section: uci (and this parser)
    /// quietly merges or replaces them, so a reader that gives the two forms different meanings
    /// can refuse it instead.
    public var writtenAsOptionAndList = false
}

/// Reads UCI text with the same parser as `braid uci` (`UCIDocument`). Errors carry file and line.
public enum UCIParser {
    public static func parse(_ text: String, file: String) throws -> UCIPackage {
        let document: UCIDocument
        do {
            document = try UCIDocument.parse(text, package: "braid")
        } catch let e as UCIParseError {
            throw ConfigError(file: file, line: e.fileLine, message(for: e))
        }
        var seen: [String: Int] = [:]
        let sections = document.sections.map { s -> UCISection in
            let index = seen[s.type, default: 0]
            seen[s.type] = index + 1
            let pieces = s.origin.flatMap { document.originals[$0]?.pieces.map(\.kind) } ?? []
            let options = s.options.map { o -> UCIOption in
                var option: UCIOption
                switch o.value {
                case .string(let v): option = UCIOption(name: o.name, values: [v], isList: false, line: o.line)
                case .list(let items): option = UCIOption(name: o.name, values: items, isList: true, line: o.line)
                }
                option.writtenAsOptionAndList =
                    pieces.contains { if case .option(o.name, _) = $0 { true } else { false } }
                    && pieces.contains { if case .listItem(o.name, _) = $0 { true } else { false } }
                return option
            }
            let name = s.isAnonymous ? nil : s.name
            return UCISection(
                type: s.type, name: name, line: s.line, options: options, label: name ?? "@\(s.type)[\(index)]")
        }
        return UCIPackage(file: file, sections: sections)
    }

    /// The parser's reasons, worded for `FILE:LINE: message (value)`.
    static func message(for e: UCIParseError) -> String {
        let word = e.word ?? ""
        switch e.reason {
        case "EOF with unterminated '", "EOF with unterminated \"": return "unterminated quote"
        case "option/list command found before the first section": return "'\(word)' outside of a 'config' section"
        case "invalid command": return "unknown keyword (\(word))"
        case "invalid character in name field": return "invalid name (\(word))"
        case "invalid character in type field": return "invalid section type (\(word))"
        case "section of different type overwrites prior section with same name":
            return "section declared again with another type"
        default: return e.reason
        }
    }

    /// uci names: letters, digits and underscore.
    static func isValidName(_ s: String) -> Bool { UCINames.isValidName(s) }
}

/// The one error type of BraidConfig: `FILE:LINE: section.option: message (value)`.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String, line: Int, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { "\(file):\(line): \(message)" }
}

/// Several errors found in one pass; the reader reports all of them, not the first only.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
