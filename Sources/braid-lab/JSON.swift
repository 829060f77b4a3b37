import BraidCore
import Glibc

/// A JSON value as this tool emits them: results and log events are flat objects.
enum JSONValue {
    case string(String)
    case int(Int)
    case double(Double)
    case null

    /// Milliseconds and seconds are reported to the microsecond or millisecond; more digits are noise.
    static func rounded(_ value: Double, places: Int = 3) -> JSONValue {
        guard value.isFinite else { return .null }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return .double((value * scale).rounded() / scale)
    }

    fileprivate var text: String {
        switch self {
        case .string(let value): return JSONValue.quote(value)
        case .int(let value): return String(value)
        case .double(let value): return value.isFinite ? "\(value)" : "null"
        case .null: return "null"
        }
    }

    private static func quote(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// A flat JSON object with keys in insertion order, rendered the way Python's json.dumps does
/// (", " and ": " separators). Log lines must match braid-traffic.py byte for byte in their keys and
/// spacing: lab/lab.sh's origin_sha finds events by grepping for `"event": "sent"`.
struct JSONObject: ExpressibleByDictionaryLiteral {
    private var fields: [(String, JSONValue)] = []

    init(dictionaryLiteral elements: (String, JSONValue)...) {
        fields = elements
    }

    subscript(key: String) -> JSONValue? {
        get { fields.first { $0.0 == key }?.1 }
        set {
            if let index = fields.firstIndex(where: { $0.0 == key }) {
                if let newValue { fields[index].1 = newValue } else { fields.remove(at: index) }
            } else if let newValue {
                fields.append((key, newValue))
            }
        }
    }

    var line: String {
        "{" + fields.map { "\(JSONValue.string($0.0).text): \($0.1.text)" }.joined(separator: ", ") + "}"
    }

    /// Prints the object as one line on stdout and flushes it (stdout is written with write(2)
    /// directly, so a script waiting on a pipe or file sees it at once).
    func emit() {
        writeAll(fd: STDOUT_FILENO, line + "\n")
    }
}

/// The origin server's event log: JSON lines appended with one write(2) each (O_APPEND), so lines
/// from several loop threads never interleave and each is on disk as soon as it is written.
final class EventLog {
    private let fd: Int32

    init(path: String) throws {
        fd = try syscall("open \(path)") { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
    }

    deinit { close(fd) }

    func record(_ event: JSONObject) {
        writeAll(fd: fd, event.line + "\n")
    }
}
