import BraidCore

/// The simple-mode data-connection key: 32 random bytes, base64 on one line (`braid genkey`).
public enum PresharedKey {
    public static let size = 32

    public static func load(path: String) throws -> [UInt8] {
        if let problem = secretFileProblem(path) { throw ConfigError(file: path, line: 0, problem) }
        guard let text = try? readFile(path) else {
            throw ConfigError(file: path, line: 0, "cannot read the pre-shared key file")
        }
        let trimmed = String(
            decoding: text.utf8.drop(while: isBlank).reversed().drop(while: isBlank).reversed(), as: UTF8.self)
        guard let key = Base64.decode(trimmed), key.count == size else {
            throw ConfigError(
                file: path, line: 1, "pre-shared key must be \(size) bytes in base64, as 'braid genkey' prints")
        }
        return key
    }

    public static func encode(_ key: [UInt8]) -> String {
        Base64.encode(key)
    }

    /// Blanks and line ends around the key: an editor's trailing newline is not part of it.
    private static func isBlank(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }
}
