import Foundation

/// Renders the gateway's status answer (JSON) as the table an installer reads.
enum StatusTable {
    static func render(_ json: String) -> String {
        guard let data = json.data(using: .utf8),
            let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return "unreadable answer from the gateway: \(json)" }
        let sessions = root["sessions"] as? [String: Any] ?? [:]
        var out = "concentrator \(root["concentrator"] ?? "?")   sessions \(sessions["active"] ?? 0) open, "
        out += "\(sessions["total"] ?? 0) since start\n"
        let header = [
            "UPLINK", "DEVICE", "ROLE", "STATE", "FAMILY", "SINCE", "ADDRESSES", "RTT", "LOSS", "SUBFLOWS", "SENT",
            "RECEIVED",
        ]
        var rows = [header]
        let now = Date().timeIntervalSince1970
        for u in root["uplinks"] as? [[String: Any]] ?? [] {
            let since = (u["since"] as? Double).map { duration(now - $0) } ?? "-"
            let rtt = (u["rtt_ms"] as? Double).map { String(format: "%.1f ms", $0) } ?? "-"
            let loss = (u["loss"] as? Double).map { String(format: "%.0f%%", $0 * 100) } ?? "-"
            let addresses = (u["addresses"] as? [String] ?? []).joined(separator: ",")
            rows.append([
                "\(u["name"] ?? "?")", "\(u["device"] ?? "?")", "\(u["role"] ?? "?")", "\(u["state"] ?? "?")",
                // The family the uplink reaches the concentrator over; "-": none in common.
                u["family"] as? String ?? "-", since,
                addresses.isEmpty ? "-" : addresses, rtt, loss, "\(u["subflows"] ?? 0)",
                bytes(u["tx_bytes"] as? Double ?? 0), bytes(u["rx_bytes"] as? Double ?? 0),
            ])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            out += row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ") + "\n"
        }
        // A path that breaks MPTCP passes its probes; say so under the table, with the reason.
        for u in root["uplinks"] as? [[String: Any]] ?? [] {
            if let mptcp = u["mptcp"] as? String, mptcp != "ok" {
                out += "\(u["name"] ?? "?"): MPTCP \(mptcp)\n"
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
        return u == 0 ? "\(Int(v)) B" : String(format: "%.1f %@", v, units[u])
    }
}
