#if PostgreSQLStore
import BraidConfig
import BraidStore
import Logging
import NIOSSL
import PostgresNIO

/// Opens connections to the store's database from its URL and the password (from the URL or
/// `store_password_file`). The password is kept here and nowhere else; nothing prints it.
public struct PostgreSQLConnector: Sendable {
    public let url: PostgreSQLURL
    private let password: String?
    let logger: Logger

    /// Reads the password file now, so a missing or unreadable one stops `braid` at once.
    public init(url: PostgreSQLURL, passwordFile: String?, logger: Logger) throws {
        self.url = url
        var password = url.password
        if let passwordFile {
            guard let text = try? readSmallFile(passwordFile) else {
                throw StoreError("cannot read store_password_file \(passwordFile)")
            }
            password = String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
        }
        self.password = password
        // postgres-nio logs each query at debug; what braid says about the store is its own.
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        self.logger = quiet
    }

    public func connect() async throws -> PostgresConnection {
        var configuration: PostgresConnection.Configuration
        if url.isUnixSocket {
            configuration = .init(
                unixSocketPath: url.socketPath, username: url.user, password: password, database: url.database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch url.tls {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            configuration = .init(
                host: url.host, port: Int(url.port), username: url.user, password: password, database: url.database,
                tls: tls)
        }
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.additionalStartupParameters = [("application_name", url.applicationName)]
        return try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
    }
}

/// What went wrong with the database, as an operator reads it: the server's own message and SQL
/// state when it answered, else the connection failure. postgres-nio's description of its error
/// hides everything on purpose; the server's message holds no password.
public func describe(_ error: Error) -> String {
    if let e = error as? PSQLError {
        if let message = e.serverInfo?[.message] {
            let state = e.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return message + state
        }
        if let underlying = e.underlying { return "\(e.code): \(underlying)" }
        return "\(e.code)"
    }
    return "\(error)"
}

func readSmallFile(_ path: String) throws -> String {
    guard let f = fopen(path, "r") else { throw StoreError("cannot open \(path)") }
    defer { fclose(f) }
    var buf = [UInt8](repeating: 0, count: 4096)
    let n = fread(&buf, 1, buf.count, f)
    return String(decoding: buf[0..<n], as: UTF8.self)
}

#if canImport(Glibc)
import Glibc
#endif
#endif
