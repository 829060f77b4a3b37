import BraidConfig

/// The UCI parser, fed arbitrary bytes as text (invalid UTF-8 becomes U+FFFD, as when a
/// configuration file is read).
public enum FuzzUCI {
    public static func run(_ data: [UInt8]) -> FuzzOutcome {
        let text = String(decoding: data, as: UTF8.self)
        guard let package = try? UCIParser.parse(text, file: "fuzz") else { return .refused }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
        for section in package.sections {
            invariant(section.line >= 1 && section.line <= lines, "section at line \(section.line) of \(lines)")
            for option in section.options {
                invariant(option.line >= section.line && option.line <= lines, "option at line \(option.line)")
                invariant(!option.values.isEmpty, "option \(option.name) without a value")
            }
        }
        return .accepted
    }
}
