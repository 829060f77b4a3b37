/// A UCI package file as OpenWrt's uci reads it: `package`, `config TYPE ['NAME']`,
/// `option NAME 'VALUE'`, `list NAME 'VALUE'`, `#` comments; words bare, single- or double-quoted.
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
}

/// Reads UCI text. Errors carry file and line, as uci's own parser does.
public enum UCIParser {
    public static func parse(_ text: String, file: String) throws -> UCIPackage {
        var sections: [UCISection] = []
        var anonymousCount: [String: Int] = [:]
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let words = try tokenize(String(rawLine), file: file, line: lineNumber)
            guard let keyword = words.first else { continue }
            switch keyword {
            case "package":
                guard words.count == 2 else {
                    throw ConfigError(file: file, line: lineNumber, "'package' takes one name")
                }
            case "config":
                guard words.count == 2 || words.count == 3 else {
                    throw ConfigError(file: file, line: lineNumber, "'config' takes a type and an optional name")
                }
                let type = words[1]
                guard isValidName(type) else {
                    throw ConfigError(file: file, line: lineNumber, "invalid section type (\(type))")
                }
                let index = anonymousCount[type, default: 0]
                anonymousCount[type] = index + 1
                var name: String? = nil
                if words.count == 3 {
                    guard isValidName(words[2]) else {
                        throw ConfigError(file: file, line: lineNumber, "invalid section name (\(words[2]))")
                    }
                    name = words[2]
                }
                sections.append(
                    UCISection(type: type, name: name, line: lineNumber, options: [], label: name ?? "@\(type)[\(index)]"))
            case "option", "list":
                guard !sections.isEmpty else {
                    throw ConfigError(file: file, line: lineNumber, "'\(keyword)' outside of a 'config' section")
                }
                guard words.count == 3 else {
                    throw ConfigError(file: file, line: lineNumber, "'\(keyword)' takes a name and one value")
                }
                let name = words[1]
                guard isValidName(name) else {
                    throw ConfigError(file: file, line: lineNumber, "invalid option name (\(name))")
                }
                var section = sections.removeLast()
                if keyword == "list", let i = section.options.lastIndex(where: { $0.name == name && $0.isList }) {
                    section.options[i].values.append(words[2])
                } else {
                    section.options.removeAll { $0.name == name }
                    section.options.append(
                        UCIOption(name: name, values: [words[2]], isList: keyword == "list", line: lineNumber))
                }
                sections.append(section)
            default:
                throw ConfigError(file: file, line: lineNumber, "unknown keyword (\(keyword))")
            }
        }
        return UCIPackage(file: file, sections: sections)
    }

    /// uci names: letters, digits and underscore.
    static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x5f }
    }

    /// Splits a line into words the way uci does: quotes group, backslash escapes outside single
    /// quotes, `#` starts a comment outside quotes.
    static func tokenize(_ line: String, file: String, line number: Int) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character? = nil
        var escape = false
        for ch in line {
            if escape {
                current.append(ch)
                escape = false
                continue
            }
            if let q = quote {
                if ch == q {
                    quote = nil
                } else if ch == "\\" && q == "\"" {
                    escape = true
                } else {
                    current.append(ch)
                }
                continue
            }
            switch ch {
            case "'", "\"":
                quote = ch
                inWord = true
            case "\\":
                escape = true
                inWord = true
            case "#":
                if inWord { words.append(current) }
                return words
            case " ", "\t", "\r":
                if inWord {
                    words.append(current)
                    current = ""
                    inWord = false
                }
            default:
                current.append(ch)
                inWord = true
            }
        }
        if quote != nil { throw ConfigError(file: file, line: number, "unterminated quote") }
        if escape { throw ConfigError(file: file, line: number, "backslash at end of line") }
        if inWord { words.append(current) }
        return words
    }
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
