import BraidCore

/// Renders the gateway's status answer (JSON) as the table an installer reads.
enum StatusTable {
    static func render(_ json: String, now: Double = Double(wallClockMillis()) / 1000) -> String {
        guard let root = JSONNode.parse(json), case .object = root else {
            return "unreadable answer from the gateway: \(json)"
        }
        let sessions = root["sessions"]
        var out = "concentrator \(root["concentrator"]?.text ?? "?")   sessions \(sessions?["active"]?.text ?? "0") open, "
        out += "\(sessions?["total"]?.text ?? "0") since start\n"
        let header = ["UPLINK", "DEVICE", "ROLE", "STATE", "SINCE", "ADDRESSES", "RTT", "LOSS", "SUBFLOWS", "SENT", "RECEIVED"]
        var rows = [header]
        let uplinks = root["uplinks"]?.array ?? []
        for u in uplinks {
            let since = u["since"]?.number.map { duration(now - $0) } ?? "-"
            let rtt = u["rtt_ms"]?.number.map { fixed($0, 1) + " ms" } ?? "-"
            let loss = u["loss"]?.number.map { fixed($0 * 100, 0) + "%" } ?? "-"
            let addresses = (u["addresses"]?.array ?? []).map(\.text).joined(separator: ",")
            rows.append([
                u["name"]?.text ?? "?", u["device"]?.text ?? "?", u["role"]?.text ?? "?", u["state"]?.text ?? "?", since,
                addresses.isEmpty ? "-" : addresses, rtt, loss, u["subflows"]?.text ?? "0",
                bytes(u["tx_bytes"]?.number ?? 0), bytes(u["rx_bytes"]?.number ?? 0),
            ])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            out += row.enumerated().map { $1 + String(repeating: " ", count: widths[$0] - $1.count) }
                .joined(separator: "  ") + "\n"
        }
        // A path that breaks MPTCP passes its probes; say so under the table, with the reason.
        for u in uplinks {
            if let mptcp = u["mptcp"]?.string, mptcp != "ok" {
                out += "\(u["name"]?.text ?? "?"): MPTCP \(mptcp)\n"
            }
        }
        return out
    }

    static func duration(_ s: Double) -> String {
        let t = Int(max(0, s))
        if t < 120 { return "\(t)s" }
        if t < 7200 { return "\(t / 60)m" }
        if t < 172_800 { return "\(t / 3600)h" }
        return "\(t / 86400)d"
    }

    static func bytes(_ b: Double) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var v = b
        var u = 0
        while v >= 1000 && u < units.count - 1 {
            v /= 1000
            u += 1
        }
        return u == 0 ? "\(Int(v)) B" : fixed(v, 1) + " " + units[u]
    }

    /// `x` with `digits` decimals, rounded half away from zero, as printf's `%.Nf` writes it.
    static func fixed(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let n = Int64((abs(x) * scale).rounded())
        let whole = n / Int64(scale)
        var frac = String(n % Int64(scale))
        frac = String(repeating: "0", count: max(0, digits - frac.count)) + frac
        return (x < 0 && n != 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + frac : "")
    }
}
