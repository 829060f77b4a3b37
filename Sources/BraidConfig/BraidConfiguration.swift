import BraidCore

/// Role of an uplink in bonding: `active` carries data, `backup` only when no active uplink is up
/// (MPTCP backup priority), `off` is configured but unused.
public enum UplinkRole: String, Sendable, CaseIterable {
    case active, backup, off
}

/// `config uplink` sections of the gateway.
public struct UplinkConfig: Equatable, Sendable {
    public var name: String
    public var device: String
    public var role: UplinkRole
    /// Next hop; nil means "learn it from the device's default route" (DHCP, PPP).
    public var gateway: IPAddress?
    /// Routing table number for this uplink's source rule; nil picks one from `table_base`.
    public var table: UInt32?
}

/// `config gateway` section.
public struct GatewayConfig: Equatable, Sendable {
    public var server: IPAddress
    public var port: UInt16
    public var pskFile: String
    public var lanDevices: [String]
    /// Local port of the transparent listener that TPROXY hands LAN connections to.
    public var tproxyPort: UInt16
    /// Packet mark that routes TPROXY'd packets to the local stack.
    public var fwmark: UInt32
    /// Table for the `local` route that TPROXY needs; uplink tables count up from table_base + 1.
    public var tableBase: UInt32
    /// Kernel MPTCP limit of additional subflows per connection.
    public var maxSubflows: UInt32
    /// Send the Convert message in the SYN (TCP Fast Open, no cookie). Off by default: on
    /// Linux 6.18 an MPTCP connection opened with data in its SYN was measured at a few percent
    /// of the throughput of one opened without (see the README's "Known limits").
    public var fastOpen: Bool
    public var uplinks: [UplinkConfig]
    /// Milliseconds between two end-to-end probes of each uplink (ICMP echo to the concentrator).
    public var probeInterval: UInt32 = 200
    /// An uplink with no probe answered for this many milliseconds is down.
    public var downAfter: UInt32 = 1000
    /// A down uplink is up again after this many answered probes in a row.
    public var upAfter: UInt32 = 3
    /// Unix socket where `braid status` asks the running gateway.
    public var statusSocket: String = "/run/braid/gateway.sock"
}

/// `config concentrator` section.
public struct ConcentratorConfig: Equatable, Sendable {
    public var listen: IPAddress
    public var port: UInt16
    public var pskFile: String
    public var denyDestinations: [IPPrefix]
    /// Seconds a client may take to send its whole Convert message.
    public var handshakeTimeout: Double
}

/// Reads typed role configurations from a UCI package, collecting every error.
public struct BraidConfigReader {
    public let package: UCIPackage
    private var errors: [ConfigError] = []

    public init(package: UCIPackage) {
        self.package = package
    }

    public static func load(path: String) throws -> UCIPackage {
        guard let text = try? readFile(path) else {
            throw ConfigError(file: path, line: 0, "cannot read the configuration file")
        }
        return try UCIParser.parse(text, file: path)
    }

    public mutating func gateway() throws -> GatewayConfig {
        errors = []
        let section = try single("gateway")
        let known = [
            "server", "port", "psk_file", "lan_device", "tproxy_port", "fwmark", "table_base", "max_subflows", "fastopen",
            "probe_interval", "down_after", "up_after", "status_socket",
        ]
        checkUnknown(section, known: known)
        let server = address(section, "server", required: true) ?? .v4(0)
        let port = uint16(section, "port", default: 4800)
        let psk = string(section, "psk_file", default: nil) ?? ""
        let lan = list(section, "lan_device")
        if lan.isEmpty { errors.append(err(section, nil, "at least one 'list lan_device' is required")) }
        let tproxyPort = uint16(section, "tproxy_port", default: 4801)
        let fwmark = uint32(section, "fwmark", default: 0x6272)  // "br"
        let tableBase = uint32(section, "table_base", default: 4800)
        let maxSubflows = uint32(section, "max_subflows", default: 8)
        if maxSubflows > 8 { errors.append(err(section, "max_subflows", "the kernel allows at most 8 (\(maxSubflows))")) }
        let fastOpen = bool(section, "fastopen", default: false)
        let probeInterval = uint32(section, "probe_interval", default: 200)
        if probeInterval < 20 || probeInterval > 60_000 {
            errors.append(err(section, "probe_interval", "must be milliseconds between 20 and 60000 (\(probeInterval))"))
        }
        let downAfter = uint32(section, "down_after", default: 1000)
        if downAfter < 2 * probeInterval || downAfter > 600_000 {
            errors.append(
                err(section, "down_after", "must be milliseconds, at least two probe intervals and at most 600000 (\(downAfter))"))
        }
        let upAfter = uint32(section, "up_after", default: 3)
        if upAfter < 1 || upAfter > 100 { errors.append(err(section, "up_after", "must be a count of probes from 1 to 100 (\(upAfter))")) }
        let statusSocket = string(section, "status_socket", default: "/run/braid/gateway.sock") ?? ""
        if !statusSocket.hasPrefix("/") || statusSocket.utf8.count > 107 {
            errors.append(err(section, "status_socket", "must be an absolute path of at most 107 bytes (\(statusSocket))"))
        }
        var uplinks: [UplinkConfig] = []
        for s in package.sections(ofType: "uplink") {
            checkUnknown(s, known: ["device", "role", "gateway", "table"])
            let device = string(s, "device", default: nil) ?? ""
            let roleText = string(s, "role", default: "active") ?? "active"
            let role = UplinkRole(rawValue: roleText)
            if role == nil {
                errors.append(err(s, "role", "must be active, backup or off (\(roleText))"))
            }
            let gw = address(s, "gateway", required: false)
            let table = s.option("table") != nil ? uint32(s, "table", default: 0) : nil
            if device.count >= 16 { errors.append(err(s, "device", "interface names are at most 15 bytes (\(device))")) }
            uplinks.append(
                UplinkConfig(name: s.label, device: device, role: role ?? .off, gateway: gw, table: table))
        }
        var seen: Set<String> = []
        for u in uplinks where !seen.insert(u.device).inserted {
            errors.append(ConfigError(file: package.file, line: 0, "uplink \(u.name).device: used twice (\(u.device))"))
        }
        try finish()
        return GatewayConfig(
            server: server, port: port, pskFile: psk, lanDevices: lan, tproxyPort: tproxyPort, fwmark: fwmark,
            tableBase: tableBase, maxSubflows: maxSubflows, fastOpen: fastOpen, uplinks: uplinks,
            probeInterval: probeInterval, downAfter: downAfter, upAfter: upAfter, statusSocket: statusSocket)
    }

    public mutating func concentrator() throws -> ConcentratorConfig {
        errors = []
        let section = try single("concentrator")
        checkUnknown(section, known: ["listen", "port", "psk_file", "deny_dest", "handshake_timeout"])
        let listen = address(section, "listen", required: false) ?? IPAddress("::")!
        let port = uint16(section, "port", default: 4800)
        let psk = string(section, "psk_file", default: nil) ?? ""
        var deny: [IPPrefix] = []
        if let opt = section.option("deny_dest") {
            for v in opt.values {
                if let p = IPPrefix(v) {
                    deny.append(p)
                } else {
                    errors.append(err(section, "deny_dest", "not an address or CIDR prefix (\(v))", line: opt.line))
                }
            }
        }
        let timeoutText = string(section, "handshake_timeout", default: "5") ?? "5"
        let timeout = Double(timeoutText) ?? -1
        if !(timeout > 0 && timeout <= 300) {
            errors.append(err(section, "handshake_timeout", "must be seconds between 0 and 300 (\(timeoutText))"))
        }
        try finish()
        return ConcentratorConfig(
            listen: listen, port: port, pskFile: psk, denyDestinations: deny, handshakeTimeout: timeout)
    }

    // MARK: - helpers

    private mutating func single(_ type: String) throws -> UCISection {
        let found = package.sections(ofType: type)
        guard found.count == 1 else {
            throw ConfigErrors(errors: [
                ConfigError(
                    file: package.file, line: found.dropFirst().first?.line ?? 0,
                    found.isEmpty ? "no 'config \(type)' section" : "more than one 'config \(type)' section")
            ])
        }
        return found[0]
    }

    private func finish() throws {
        if !errors.isEmpty { throw ConfigErrors(errors: errors) }
    }

    private func err(_ s: UCISection, _ option: String?, _ message: String, line: Int? = nil) -> ConfigError {
        let where_ = option.map { "\(s.label).\($0)" } ?? s.label
        let l = line ?? option.flatMap { s.option($0)?.line } ?? s.line
        return ConfigError(file: package.file, line: l, "\(where_): \(message)")
    }

    private mutating func checkUnknown(_ s: UCISection, known: [String]) {
        for o in s.options where !known.contains(o.name) {
            errors.append(err(s, o.name, "unknown option (\(o.values.joined(separator: " ")))", line: o.line))
        }
    }

    private mutating func string(_ s: UCISection, _ name: String, default d: String?) -> String? {
        guard let o = s.option(name) else {
            if d == nil { errors.append(err(s, nil, "option '\(name)' is required")) }
            return d
        }
        if o.isList { errors.append(err(s, name, "must be an option, not a list")) }
        return o.values.last
    }

    private func list(_ s: UCISection, _ name: String) -> [String] {
        s.option(name)?.values ?? []
    }

    private mutating func address(_ s: UCISection, _ name: String, required: Bool) -> IPAddress? {
        guard let o = s.option(name), let v = o.values.last else {
            if required { errors.append(err(s, nil, "option '\(name)' is required")) }
            return nil
        }
        guard let a = IPAddress(v) else {
            errors.append(err(s, name, "not an IP address (\(v))"))
            return nil
        }
        return a
    }

    private mutating func uint16(_ s: UCISection, _ name: String, default d: UInt16) -> UInt16 {
        guard let v = s.option(name)?.values.last else { return d }
        guard let n = UInt16(v), n > 0 else {
            errors.append(err(s, name, "must be a port number 1-65535 (\(v))"))
            return d
        }
        return n
    }

    /// uci booleans: 1/0, on/off, true/false, yes/no, enabled/disabled.
    private mutating func bool(_ s: UCISection, _ name: String, default d: Bool) -> Bool {
        guard let v = s.option(name)?.values.last else { return d }
        switch v {
        case "1", "on", "true", "yes", "enabled": return true
        case "0", "off", "false", "no", "disabled": return false
        default:
            errors.append(err(s, name, "must be a boolean, 0 or 1 (\(v))"))
            return d
        }
    }

    private mutating func uint32(_ s: UCISection, _ name: String, default d: UInt32) -> UInt32 {
        guard let v = s.option(name)?.values.last else { return d }
        let n = v.hasPrefix("0x") ? UInt32(v.dropFirst(2), radix: 16) : UInt32(v)
        guard let n else {
            errors.append(err(s, name, "must be an unsigned 32-bit number (\(v))"))
            return d
        }
        return n
    }
}

func readFile(_ path: String) throws -> String {
    guard let f = fopen(path, "r") else { throw ConfigError(file: path, line: 0, "cannot open") }
    defer { fclose(f) }
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        data += buf[0..<n]
        if data.count > 16 << 20 { throw ConfigError(file: path, line: 0, "file larger than 16 MiB") }
    }
    return String(decoding: data, as: UTF8.self)
}

#if canImport(Glibc)
import Glibc
#endif
