/// A JSON document as a value: what `JSONText.encode` builds from an `Encodable` before writing it,
/// and what `JSONText.parse` reads before a `Decodable` is made from it.
///
/// Numbers keep their kind: whole numbers stay integers (a byte counter of 2^63 must not lose its
/// last digits in a Double), fractions are Doubles.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// Members in the order they were written (or read); a key written twice keeps its last value.
    case object([JSONMember])

    /// The member named `key`, or nil (also when this is not an object).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }
}

/// One `"key": value` of a JSON object.
public struct JSONMember: Equatable, Sendable {
    public var key: String
    public var value: JSONValue

    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

extension JSONValue {
    /// The value as compact JSON text (no spaces, members in their order).
    public var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let n): out += String(n)
        case .uint(let n): out += String(n)
        case .double(let d): out += Self.number(d)
        case .string(let s): Self.quote(s, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, m) in members.enumerated() {
                if i > 0 { out += "," }
                Self.quote(m.key, into: &out)
                out += ":"
                m.value.write(into: &out)
            }
            out += "}"
        }
    }

    /// A Double as JSON: Swift's shortest round-tripping form, which JSON's grammar accepts
    /// (`1.5`, `1e-05`, `1e+20`). JSON has no NaN or infinity; such a value is written as null,
    /// as JavaScript's JSON.stringify does, so one bad sample cannot make a whole document fail.
    static func number(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        return d.description
    }

    /// `s` as a JSON string: quotes and backslashes escaped, control characters as escapes
    /// (RFC 8259 §7 requires it below U+0020), everything else as it is in UTF-8.
    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
