/// The errors uci reports, with its wording and its numeric codes (which `add` uses as exit status).
public enum UCIError: Error, Equatable, Sendable {
    case invalidArgument
    case notFound
    case io
    /// A syntax error; from a file it says where, from a command-line path it does not.
    case parse(UCIParseError?)
    case duplicate
    /// A file that could not be opened, with strerror(3)'s words (`-f FILE`).
    case cannotOpen(String)
    /// A save or delta directory that someone else could have written (braid's own refusal; uci
    /// has none): staged changes in it would be committed, and a link in it would be written through.
    case unsafeDirectory(path: String, reason: String)

    public var message: String {
        switch self {
        case .invalidArgument: return "Invalid argument"
        case .notFound: return "Entry not found"
        case .io: return "I/O error"
        case .parse(let e?): return e.description
        case .parse(nil): return "Parse error"
        case .duplicate: return "Duplicate entry"
        case .cannotOpen(let reason): return reason
        case .unsafeDirectory(let path, let reason): return "refusing the save directory \(path): \(reason)"
        }
    }

    public var code: Int32 {
        switch self {
        case .invalidArgument: return 2
        case .notFound: return 3
        case .io: return 4
        case .parse: return 5
        case .duplicate: return 6
        case .cannotOpen: return 4
        case .unsafeDirectory: return 4
        }
    }
}

/// `package[.section[.option]][=value]` as uci's command line takes it. A section that is not a
/// plain name (`@uplink[0]`, `@[-1]`) is an extended reference, resolved against a document.
public struct UCIPath: Equatable, Sendable {
    public var package: String
    public var section: String?
    public var option: String?
    public var value: String?
    public var isExtended: Bool

    /// Splits and checks a path; a malformed one is uci's bare `Parse error`.
    public static func parse(_ text: String) throws -> UCIPath {
        var rest = Substring(text)
        var value: String? = nil
        if let eq = rest.firstIndex(of: "=") {
            value = String(rest[rest.index(after: eq)...])
            rest = rest[..<eq]
        }
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 3 else { throw UCIError.parse(nil) }
        var path = UCIPath(
            package: parts[0], section: parts.count > 1 ? parts[1] : nil, option: parts.count > 2 ? parts[2] : nil,
            value: value, isExtended: false)
        guard UCINames.isValidPackage(path.package) else { throw UCIError.parse(nil) }
        if let s = path.section, !UCINames.isValidName(s) { path.isExtended = true }
        if let o = path.option, !UCINames.isValidName(o) { throw UCIError.parse(nil) }
        if let v = value, !UCINames.isValidText(v) { throw UCIError.parse(nil) }
        return path
    }
}

/// Where a path points in a document. `isComplete` is false when the section or option named
/// does not exist, which some commands accept (set creates, revert filters by name).
public struct UCILookup: Equatable, Sendable {
    public var sectionIndex: Int?
    public var optionIndex: Int?
    /// The section's real name: an extended reference resolves to the section's (generated) name.
    public var section: String?
    public var isComplete: Bool
}

extension UCIDocument {
    public func lookup(_ path: UCIPath) throws -> UCILookup {
        var result = UCILookup(sectionIndex: nil, optionIndex: nil, section: path.section, isComplete: false)
        guard let name = path.section else {
            result.isComplete = true
            return result
        }
        let index = path.isExtended ? try resolve(name) : sectionIndex(named: name)
        guard let index else { return result }
        result.sectionIndex = index
        result.section = sections[index].name
        if let option = path.option {
            guard let o = sections[index].options.firstIndex(where: { $0.name == option }) else { return result }
            result.optionIndex = o
        }
        result.isComplete = true
        return result
    }

    /// `@type[index]` or `@[index]`: the index-th section of that type (of any type), counting
    /// from the end when negative. Malformed references are an invalid argument.
    func resolve(_ reference: String) throws -> Int? {
        guard reference.hasPrefix("@"), let open = reference.firstIndex(of: "["), reference.hasSuffix("]") else {
            throw UCIError.invalidArgument
        }
        let type = String(reference[reference.index(after: reference.startIndex)..<open])
        let digits = reference[reference.index(after: open)..<reference.index(before: reference.endIndex)]
        guard !digits.contains("]") else { throw UCIError.invalidArgument }
        // strtol: an empty index is 0.
        guard var index = digits.isEmpty ? 0 : Int(digits) else { throw UCIError.invalidArgument }
        if !type.isEmpty && !UCINames.isValidType(type) { throw UCIError.invalidArgument }
        let candidates = sections.indices.filter { type.isEmpty || sections[$0].type == type }
        if index < 0 { index += candidates.count }
        return candidates.indices.contains(index) ? candidates[index] : nil
    }
}
