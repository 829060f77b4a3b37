/// Why a text is not JSON, with the byte offset where reading stopped.
public struct JSONParseError: Error, CustomStringConvertible, Equatable {
    public var offset: Int
    public var message: String

    public var description: String { "not JSON at byte \(offset): \(message)" }
}

extension JSONText {
    /// Nesting deeper than this is refused: the text comes from a socket, and recursion is bounded.
    public static let maxDepth = 64

    /// Reads one JSON value (RFC 8259) that fills the whole text, white space around it aside.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        var parser = JSONParser(bytes: Array(text.utf8))
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.at == parser.bytes.count else { throw parser.error("text after the value") }
        return value
    }
}

struct JSONParser {
    let bytes: [UInt8]
    var at = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func error(_ message: String) -> JSONParseError { JSONParseError(offset: at, message: message) }

    var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    mutating func skipSpace() {
        while let b = peek, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { at += 1 }
    }

    mutating func expect(_ word: String) throws(JSONParseError) {
        for b in word.utf8 {
            guard peek == b else { throw error("expected \(word)") }
            at += 1
        }
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < JSONText.maxDepth else { throw error("nested deeper than \(JSONText.maxDepth)") }
        guard let b = peek else { throw error("unexpected end") }
        switch b {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character")
        }
    }

    mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
        at += 1
        var members: [JSONMember] = []
        skipSpace()
        if peek == UInt8(ascii: "}") {
            at += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard peek == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try string()
            skipSpace()
            try expect(":")
            skipSpace()
            members.append(JSONMember(key, try value(depth: depth + 1)))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "}"):
                at += 1
                return .object(members)
            default: throw error("expected , or }")
            }
        }
    }

    mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
        at += 1
        var items: [JSONValue] = []
        skipSpace()
        if peek == UInt8(ascii: "]") {
            at += 1
            return .array(items)
        }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "]"):
                at += 1
                return .array(items)
            default: throw error("expected , or ]")
            }
        }
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard at + 4 <= bytes.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for b in bytes[at..<at + 4] {
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw error("bad \\u escape")
            }
            v = v << 4 | UInt32(d)
        }
        at += 4
        return v
    }

    mutating func string() throws(JSONParseError) -> String {
        at += 1  // the opening quote
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw error("unterminated string") }
            at += 1
            switch b {
            case UInt8(ascii: "\""):
                // The input was a Swift String, so its UTF-8 is valid; escapes only add valid scalars.
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw error("unterminated escape") }
                at += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A surrogate pair (RFC 8259 §7): the low half must follow.
                        guard peek == UInt8(ascii: "\\") else { throw error("lone surrogate") }
                        at += 1
                        guard peek == UInt8(ascii: "u") else { throw error("lone surrogate") }
                        at += 1
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let s = Unicode.Scalar(scalar) else { throw error("lone surrogate") }
                    out.append(contentsOf: Array(String(Character(s)).utf8))
                default: throw error("bad escape")
                }
            case 0..<0x20: throw error("control character in a string")
            default: out.append(b)
            }
        }
    }

    mutating func number() throws(JSONParseError) -> JSONValue {
        let start = at
        var whole = true
        if peek == UInt8(ascii: "-") { at += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            var n = 0
            while let b = p.peek, b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") {
                p.at += 1
                n += 1
            }
            return n
        }
        let intStart = at
        guard digits(&self) > 0 else { throw error("expected digits") }
        if bytes[intStart] == UInt8(ascii: "0") && at - intStart > 1 { throw error("leading zero") }
        if peek == UInt8(ascii: ".") {
            at += 1
            whole = false
            guard digits(&self) > 0 else { throw error("expected digits after .") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            at += 1
            whole = false
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
            guard digits(&self) > 0 else { throw error("expected exponent digits") }
        }
        let lexeme = String(decoding: bytes[start..<at], as: UTF8.self)
        if whole {
            if let n = Int64(lexeme) { return .int(n) }
            if let n = UInt64(lexeme) { return .uint(n) }
        }
        guard let d = Double(lexeme) else { throw error("number out of range") }
        return .double(d)
    }
}
