/// Base64 (RFC 4648 §4, standard alphabet, `=` padding) for keys written to and read from files.
/// Here rather than Foundation's `Data(base64Encoded:)` so the daemon does not link Foundation
/// and its ICU data (tens of megabytes) for one conversion.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The value of each alphabet byte, 0xFF for bytes outside it.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// `bytes` as padded base64 text.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i]
            let b1 = i + 1 < bytes.count ? bytes[i + 1] : 0
            let b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of padded base64 `text`, or nil when it is not that: a length that is not a
    /// multiple of 4, a byte outside the alphabet, padding anywhere but the end, or pad bits that
    /// are not zero (so each key has exactly one spelling).
    public static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            let last = i + 4 == input.count
            let pads = last ? (input[i + 3] == UInt8(ascii: "=") ? (input[i + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
            var quad: UInt32 = 0
            for k in 0..<4 {
                let byte = input[i + k]
                var value: UInt8 = 0
                if k >= 4 - pads {
                    value = 0
                } else {
                    value = values[Int(byte)]
                    if value == 0xFF { return nil }
                }
                quad = quad << 6 | UInt32(value)
            }
            out.append(UInt8(truncatingIfNeeded: quad >> 16))
            if pads < 2 { out.append(UInt8(truncatingIfNeeded: quad >> 8)) }
            if pads < 1 { out.append(UInt8(truncatingIfNeeded: quad)) }
            // Bits the padding leaves over must be zero.
            if pads == 1 && quad & 0xFF != 0 { return nil }
            if pads == 2 && quad & 0xFFFF != 0 { return nil }
            i += 4
        }
        return out
    }
}
