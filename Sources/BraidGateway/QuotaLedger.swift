/// The uplinks' data-cap usage as kept on flash (`state_dir/quota`): one line per uplink with a
/// cap, words separated by spaces, so an operator can read it and a half-written one is caught.
///
///     uplink lte used 1234567 start 1764547200 end 1767225600 device 7 0b5c…-… 98765432
///
/// Policy without I/O: text in, records out (QuotaKeeper reads and writes the file).
struct QuotaLedger: Equatable {
    var records: [String: QuotaMeter.Record] = [:]

    struct ParseError: Error, CustomStringConvertible {
        var line: Int
        var message: String
        var description: String { "line \(line): \(message)" }
    }

    static let header = "# braid gateway: data-cap usage per uplink, written by the daemon (see state_dir)"

    /// Uplinks in name order, so two writes of the same counts are the same bytes.
    var text: String {
        var out = Self.header + "\n"
        for name in records.keys.sorted() {
            let r = records[name]!
            out += "uplink \(name) used \(r.used) start \(r.periodStart) end \(r.periodEnd)"
            if let c = r.counter { out += " device \(c.ifindex) \(c.boot) \(c.bytes)" }
            out += "\n"
        }
        return out
    }

    init(records: [String: QuotaMeter.Record] = [:]) {
        self.records = records
    }

    init(parsing text: String) throws(ParseError) {
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = i + 1
            let words = raw.split(separator: " ").map(String.init)
            if words.isEmpty || words[0].hasPrefix("#") { continue }
            func bad(_ m: String) -> ParseError { ParseError(line: line, message: "\(m): \(raw)") }
            guard words.count == 8 || words.count == 12, words[0] == "uplink", words[2] == "used",
                words[4] == "start", words[6] == "end"
            else { throw bad("expected `uplink NAME used N start S end E [device IFINDEX BOOT BYTES]`") }
            guard let used = UInt64(words[3]), let start = Int64(words[5]), let end = Int64(words[7]), start < end
            else { throw bad("used, start and end must be numbers, start before end") }
            var counter: QuotaMeter.Counter? = nil
            if words.count == 12 {
                guard words[8] == "device", let ifindex = UInt32(words[9]), let bytes = UInt64(words[11]) else {
                    throw bad("device must be followed by an ifindex, a boot id and a byte count")
                }
                counter = QuotaMeter.Counter(ifindex: ifindex, boot: words[10], bytes: bytes)
            }
            guard records[words[1]] == nil else { throw bad("uplink \(words[1]) appears twice") }
            records[words[1]] = QuotaMeter.Record(used: used, periodStart: start, periodEnd: end, counter: counter)
        }
    }
}
