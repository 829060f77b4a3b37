/// Where a concentrator's subscribers and classes live (`option store`): the configuration file
/// itself, or a PostgreSQL database shared by a fleet of concentrators.
public enum StoreLocation: Equatable, Sendable, CustomStringConvertible {
    /// `config subscriber` and `config class` sections of the file, as before the store existed.
    case uci
    case postgreSQL(PostgreSQLURL)

    /// Reads `uci` or a `postgresql://` (or `postgres://`) URL. The error names what is wrong
    /// but never repeats a password.
    public init(_ text: String) throws(ConfigSchema.ValueError) {
        if text == "uci" {
            self = .uci
        } else {
            self = .postgreSQL(try PostgreSQLURL(text))
        }
    }

    /// The location as logs and errors show it: a password is never part of it.
    public var description: String {
        switch self {
        case .uci: "uci"
        case .postgreSQL(let url): url.description
        }
    }
}

/// A libpq-style connection URL, `postgresql://[USER[:PASSWORD]@][HOST][:PORT][/DATABASE][?PARAMS]`,
/// with the parts braid uses. HOST may be a percent-encoded directory (`%2Frun%2Fpostgresql`) or
/// come as `?host=/dir`: a Unix socket, the libpq way. PARAMS: `host`, `port`, `sslmode`
/// (`disable`, `prefer`, `require`), `application_name`; any other is refused, so a typo does not
/// silently change what connects.
public struct PostgreSQLURL: Equatable, Sendable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, prefer, require
    }

    public var user: String
    /// From the URL; `store_password_file` gives it otherwise. Never printed.
    public var password: String?
    /// A host name or address, or an absolute directory holding the server's Unix socket.
    public var host: String
    public var port: UInt16
    public var database: String
    public var tls: TLSMode
    public var applicationName: String

    /// Whether `host` names a Unix socket directory rather than a TCP host.
    public var isUnixSocket: Bool { host.hasPrefix("/") }
    /// The socket file of a Unix socket host, as PostgreSQL names it.
    public var socketPath: String { "\(host)/.s.PGSQL.\(port)" }

    public init(_ text: String) throws(ConfigSchema.ValueError) {
        func bad(_ m: String) -> ConfigSchema.ValueError { ConfigSchema.ValueError(message: m) }
        var rest: Substring
        if text.hasPrefix("postgresql://") {
            rest = text.dropFirst("postgresql://".count)
        } else if text.hasPrefix("postgres://") {
            rest = text.dropFirst("postgres://".count)
        } else {
            throw bad("must be uci or a postgresql:// URL")
        }
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user = "postgres"
        var password: String?
        // The last '@': a password may hold one (percent-encoded or not).
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                guard let u = Self.decode(credentials[..<colon]), let p = Self.decode(credentials[credentials.index(after: colon)...])
                else { throw bad("user or password: bad percent-encoding") }
                user = u
                password = p
            } else {
                guard let u = Self.decode(credentials) else { throw bad("user: bad percent-encoding") }
                user = u
            }
            if user.isEmpty { throw bad("user is empty") }
        }
        var host = "localhost"
        var port: UInt16 = 5432
        var hostText = rest
        if rest.hasPrefix("[") {
            // An IPv6 literal: [2001:db8::1]:5432
            guard let close = rest.firstIndex(of: "]") else { throw bad("host: '[' without ']'") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            hostText = rest[rest.index(after: close)...]
            if !hostText.isEmpty {
                guard hostText.hasPrefix(":"), let p = UInt16(hostText.dropFirst()), p > 0 else {
                    throw bad("port must be 1-65535")
                }
                port = p
            }
        } else {
            if let colon = rest.lastIndex(of: ":") {
                guard let p = UInt16(rest[rest.index(after: colon)...]), p > 0 else { throw bad("port must be 1-65535") }
                port = p
                hostText = rest[..<colon]
            }
            if !hostText.isEmpty {
                guard let h = Self.decode(hostText) else { throw bad("host: bad percent-encoding") }
                host = h
            }
        }
        guard let database = Self.decode(path) else { throw bad("database: bad percent-encoding") }
        var tls = TLSMode.prefer
        var applicationName = "braid"
        for pair in query.split(separator: "&") where !pair.isEmpty {
            guard let eq = pair.firstIndex(of: "="), let value = Self.decode(pair[pair.index(after: eq)...]) else {
                throw bad("parameter \(pair.prefix(40)) must be NAME=VALUE")
            }
            switch pair[..<eq] {
            case "host": host = value
            case "port":
                guard let p = UInt16(value), p > 0 else { throw bad("port must be 1-65535") }
                port = p
            case "sslmode":
                guard let m = TLSMode(rawValue: value) else {
                    throw bad("sslmode must be \(ConfigSchema.sentence(TLSMode.allCases.map(\.rawValue), "or"))")
                }
                tls = m
            case "application_name": applicationName = value
            case let name: throw bad("unknown parameter \(name.prefix(40)) (host, port, sslmode, application_name)")
            }
        }
        if host.isEmpty { throw bad("host is empty") }
        if host.hasPrefix("/") && tls == .require { throw bad("sslmode=require over a Unix socket") }
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database.isEmpty ? user : database
        self.tls = tls
        self.applicationName = applicationName
    }

    /// The URL without its password, for logs, errors and `braid status`.
    public var description: String {
        let h = isUnixSocket ? Self.encode(host) : (host.contains(":") ? "[\(host)]" : host)
        let secret = password == nil ? "" : ":***"
        return "postgresql://\(Self.encode(user))\(secret)@\(h):\(port)/\(Self.encode(database))?sslmode=\(tls.rawValue)"
    }

    /// Percent-decoding; nil for a '%' not followed by two hexadecimal digits.
    static func decode(_ s: Substring) -> String? {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%") {
                guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16)
                else { return nil }
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func encode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            if ConfigSchema.isAlphanumeric(b) || b == 0x2d || b == 0x2e || b == 0x5f || b == 0x7e {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "%" + String(b, radix: 16, uppercase: true).leftPadded
            }
        }
        return out
    }
}

extension String {
    fileprivate var leftPadded: String { count == 1 ? "0" + self : self }
}

extension StoreLocation {
    /// `text` with anything between `://` and `@` after a ':' masked: what an error may quote of
    /// a store value that did not even parse.
    public static func redacted(_ text: String) -> String {
        guard let schemeEnd = Self.end(of: "://", in: text), let at = text.lastIndex(of: "@"), schemeEnd < at,
            let colon = text[schemeEnd..<at].firstIndex(of: ":")
        else { return text }
        return String(text[..<text.index(after: colon)]) + "***" + String(text[at...])
    }

    /// The index just past the first occurrence of `needle` in `text` (no Foundation here).
    private static func end(of needle: String, in text: String) -> String.Index? {
        var i = text.startIndex
        while i < text.endIndex {
            if text[i...].hasPrefix(needle) { return text.index(i, offsetBy: needle.count) }
            i = text.index(after: i)
        }
        return nil
    }
}
