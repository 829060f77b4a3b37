import BraidCore

/// Where a LAN-facing HTTP page listens (`option web_listen`): nowhere, on the LAN device's own
/// address, or on an address the operator names.
///
/// `lan` is the default because a gateway's LAN address is often set by the installer (or by
/// OpenWrt's network config) and not repeated in braid's file; the daemon resolves it from the
/// first `lan_device` that has one, at start, at reload and when it changes.
public enum ListenerSetting: Equatable, Sendable, CustomStringConvertible {
    /// Not served.
    case off
    /// The first address of the LAN devices (IPv4 preferred), on this port.
    case lan(port: UInt16)
    /// Exactly this address and port.
    case endpoint(Endpoint)

    /// Reads `off`, `lan`, `lan:PORT`, `ADDRESS`, `ADDRESS:PORT` or `[IPv6]:PORT`; nil for
    /// anything else. A bare address or `lan` gets `defaultPort`.
    public init?(_ text: String, defaultPort: UInt16) {
        func port(_ s: Substring) -> UInt16? {
            guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = UInt16(s), n > 0 else {
                return nil
            }
            return n
        }
        if text == "off" {
            self = .off
        } else if text == "lan" {
            self = .lan(port: defaultPort)
        } else if text.hasPrefix("lan:") {
            guard let p = port(text.dropFirst(4)) else { return nil }
            self = .lan(port: p)
        } else if text.hasPrefix("[") {
            // `[2001:db8::1]:8080`: the brackets keep the port apart from the address's colons.
            guard let close = text.firstIndex(of: "]"), let a = IPAddress(String(text[text.index(after: text.startIndex)..<close])),
                !a.isIPv4
            else { return nil }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                self = .endpoint(Endpoint(address: a, port: defaultPort))
            } else {
                guard rest.hasPrefix(":"), let p = port(rest.dropFirst()) else { return nil }
                self = .endpoint(Endpoint(address: a, port: p))
            }
        } else if let a = IPAddress(text) {
            self = .endpoint(Endpoint(address: a, port: defaultPort))
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let a = IPAddress(String(parts[0])), a.isIPv4, let p = port(parts[1]) else {
                return nil
            }
            self = .endpoint(Endpoint(address: a, port: p))
        }
    }

    /// The port served, nil when off.
    public var port: UInt16? {
        switch self {
        case .off: nil
        case .lan(let p): p
        case .endpoint(let e): e.port
        }
    }

    /// The endpoint to bind given the LAN devices' addresses in their order: the first IPv4
    /// address, else the first IPv6 address that is not link-local (a link-local one would need a
    /// zone, and a browser cannot type it). Nil when off or when the LAN has no such address.
    public func resolve(lanAddresses: [IPAddress]) -> Endpoint? {
        switch self {
        case .off:
            return nil
        case .endpoint(let e):
            return e
        case .lan(let port):
            let chosen =
                lanAddresses.first(where: \.isIPv4)
                ?? lanAddresses.first(where: { !$0.isIPv4 && !($0.bytes[0] == 0xfe && $0.bytes[1] & 0xc0 == 0x80) })
            return chosen.map { Endpoint(address: $0, port: port) }
        }
    }

    public var description: String {
        switch self {
        case .off: "off"
        case .lan(let p): "lan:\(p)"
        case .endpoint(let e): "\(e)"
        }
    }
}
