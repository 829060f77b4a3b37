import BraidCore
import Foundation

/// The simple-mode data-connection key: 32 random bytes, base64 on one line (`braid genkey`).
public enum PresharedKey {
    public static let size = 32

    public static func load(path: String) throws -> [UInt8] {
        if let problem = secretFileProblem(path) { throw ConfigError(file: path, line: 0, problem) }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(file: path, line: 0, "cannot read the pre-shared key file")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: trimmed), data.count == size else {
            throw ConfigError(
                file: path, line: 1, "pre-shared key must be \(size) bytes in base64, as 'braid genkey' prints")
        }
        return Array(data)
    }

    public static func encode(_ key: [UInt8]) -> String {
        Data(key).base64EncodedString()
    }
}
