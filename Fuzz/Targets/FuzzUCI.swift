import BraidConfig

/// The UCI parser, fed arbitrary bytes as text (invalid UTF-8 becomes U+FFFD, as when a
/// configuration file is read).
public enum FuzzUCI {
    public static func run(_ data: [UInt8]) -> FuzzOutcome {
        let text = String(decoding: data, as: UTF8.self)
        guard let package = try? UCIParser.parse(text, file: "fuzz") else { return .refused }
        // Lines as the parser counts them: by newline bytes ("\r\n" is one Character in Swift).
        let lines = data.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
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
