import BraidCore
import BraidStatus

/// Renders a daemon's status document (JSON from its local socket) as the table an installer or
/// an operator reads: the gateway's uplinks, or the concentrator's subscribers.
enum StatusTable {
    static func render(_ json: String) -> String {
        let document: JSONValue
        do {
            document = try JSONText.parse(json)
        } catch {
            return "unreadable answer from the daemon (\(error)): \(json)"
        }
        do {
            switch document["role"] {
            case .string("concentrator")?:
                return concentrator(try JSONText.decode(ConcentratorStatus.self, from: document))
            default:
                return gateway(try JSONText.decode(GatewayStatus.self, from: document))
            }
        } catch {
            return "unreadable answer from the daemon (\(error)): \(json)"
        }
    }

    static func gateway(_ s: GatewayStatus) -> String {
        var out = "concentrator \(s.concentrator)   "
        out += "sessions \(s.sessions.active) open, \(s.sessions.total) since start\n"
        let header = [
            "UPLINK", "DEVICE", "ROLE", "STATE", "FAMILY", "SINCE", "ADDRESSES", "RTT", "LOSS", "SUBFLOWS", "SENT",
            "RECEIVED", "SHARE",
        ]
        let now = s.time ?? Double(wallClockMillis()) / 1000
        let rows = s.uplinks.map { u in
            [
                // The family the uplink reaches the concentrator over; "-": none in common.
                // An overflow uplink's role says whether it carries now: "overflow:standby".
                u.name, u.device, u.overflow.map { "\(u.role):\($0)" } ?? u.role, u.state, u.family ?? "-",
                duration(now - u.since),
                u.addresses.isEmpty ? "-" : u.addresses.joined(separator: ","),
                u.rttMs.map { fixed($0, 1) + " ms" } ?? "-", u.loss.map { fixed($0 * 100, 0) + "%" } ?? "-",
                "\(u.subflows)", bytes(u.txBytes), bytes(u.rxBytes),
                // Its part of the bonded bytes over the last 10 s, and its cap: "18% max 20%".
                (u.share.map { fixed($0, 0) + "%" } ?? "-") + (u.shareCap.map { " max \($0)%" } ?? ""),
            ]
        }
        out += table([header] + rows)
        // A path that breaks MPTCP passes its probes; say so under the table, with the reason.
        for u in s.uplinks where u.mptcp != "ok" {
            out += "\(u.name): MPTCP \(u.mptcp)\n"
        }
        // Data caps under the table too: one line per capped uplink, the cap's state first.
        for u in s.uplinks {
            guard let q = u.quota else { continue }
            out += "\(u.name): quota \(bytes(q.used)) of \(bytes(q.cap)) this \(q.period), resets on \(q.resetsOn)"
            out += q.state == "reached" ? "; reached: \(q.action) until then\n" : "\n"
        }
        out += rules(s.rules ?? [])
        // Several concentrators (`list server`): which one new sessions go to, and how each stands.
        if let list = s.concentrators, list.count > 1 {
            let head = ["CONCENTRATOR", "IN USE", "STATE", "SINCE", "CONTROL", "KEY", "ADDRESSES", "ERROR"]
            let lines = list.map { c in
                [
                    c.server, c.inUse ? "yes" : "-", c.state, c.since.map { duration(now - $0) } ?? "-", c.control,
                    c.key.map { "\($0)" } ?? "-", c.addresses.isEmpty ? "-" : c.addresses.joined(separator: ","),
                    c.error ?? "-",
                ]
            }
            out += "\n" + table([head] + lines)
        }
        return out
    }

    /// The gateway's rules in evaluation order with their hits; nothing when it has none.
    static func rules(_ rules: [RuleStatus]) -> String {
        guard !rules.isEmpty else { return "" }
        let rows = rules.map { [$0.name, $0.origin, $0.action, "\($0.hits)", bytes($0.bytes)] }
        return "\n" + table([["RULE", "ORIGIN", "ACTION", "HITS", "BYTES"]] + rows)
    }

    static func concentrator(_ s: ConcentratorStatus) -> String {
        var out = "concentrator \(s.listen)   sessions \(s.sessions.active) open, \(s.sessions.total) since start   "
        out += "control channels \(s.controlChannels)   up \(bytes(s.bytes.up)), down \(bytes(s.bytes.down))\n"
        let header = [
            "SUBSCRIBER", "CLASS", "CONFIG", "CONTROL", "SINCE", "KEY", "FROM", "SESSIONS", "UP", "DOWN", "RATE UP",
            "RATE DOWN",
        ]
        let rows = s.subscribers.map { sub in
            [
                sub.name, sub.serviceClass ?? "-", sub.config,
                sub.control.channels > 1 ? "\(sub.control.state) (\(sub.control.channels))" : sub.control.state,
                sub.control.since.map { duration(s.time - $0) } ?? "-", sub.control.key.map { "\($0)" } ?? "-",
                sub.control.from ?? "-", "\(sub.sessions)", bytes(sub.bytes.up), bytes(sub.bytes.down),
                rate(sub.rateBps.up), rate(sub.rateBps.down),
            ]
        }
        out += table([header] + rows)
        if s.refusals.isEmpty {
            out += "refused since start: none\n"
        } else {
            var byListener: [(String, [String])] = []
            for r in s.refusals {
                let item = "\(r.reason) \(r.count)"
                if let i = byListener.firstIndex(where: { $0.0 == r.listener }) {
                    byListener[i].1.append(item)
                } else {
                    byListener.append((r.listener, [item]))
                }
            }
            out += "refused since start: "
            out += byListener.map { "\($0.0): \($0.1.joined(separator: ", "))" }.joined(separator: "; ") + "\n"
        }
        return out
    }

    /// Columns padded to their widest cell, two spaces apart.
    static func table(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        let widths = first.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = ""
        for row in rows {
            let cells = row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }
            out += cells.joined(separator: "  ") + "\n"
        }
        return out
    }

    static func duration(_ s: Double) -> String {
        let t = Int(max(0, s.isFinite ? s : 0))
        if t < 120 { return "\(t)s" }
        if t < 7200 { return "\(t / 60)m" }
        if t < 172_800 { return "\(t / 3600)h" }
        return "\(t / 86400)d"
    }

    static func bytes(_ b: UInt64) -> String { scaled(Double(b), "B") }

    static func rate(_ bitsPerSecond: Double) -> String { scaled(bitsPerSecond, "bit/s") }

    /// 1000-based, one decimal above the base unit: `950 B`, `1.2 MB`, `3.4 Mbit/s`.
    static func scaled(_ value: Double, _ unit: String) -> String {
        let prefixes = ["", "k", "M", "G", "T"]
        var v = value
        var p = 0
        while v >= 1000 && p < prefixes.count - 1 {
            v /= 1000
            p += 1
        }
        let k = unit == "B" && p > 0 ? prefixes[p].uppercased() : prefixes[p]
        return p == 0 ? "\(Int(v)) \(unit)" : "\(fixed(v, 1)) \(k)\(unit)"
    }

    /// `x` with `digits` decimals, without Foundation's String(format:).
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
