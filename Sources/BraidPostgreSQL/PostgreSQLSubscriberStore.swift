#if PostgreSQLStore
import BraidConfig
import BraidStore
import Logging
import PostgresNIO

/// The subscriber store in PostgreSQL, for `braid store init` and `braid subscriber`: one
/// connection per command. Every change runs in a transaction that reads the directory, applies
/// the same rules as the uci store (`SubscriberDirectory.applying`), then writes; the tables'
/// triggers tell every concentrator.
public final class PostgreSQLSubscriberStore: SubscriberStore {
    let connector: PostgreSQLConnector

    public init(connector: PostgreSQLConnector) {
        self.connector = connector
    }

    /// Creates or migrates the schema; returns the migrations applied (none when current).
    public func initialise() async throws -> [StoreSchema.Migration] {
        try await withConnection { c in
            try await c.query("BEGIN", logger: self.connector.logger)
            do {
                try await c.query("SELECT pg_advisory_xact_lock(\(StoreSchema.lockKey))", logger: self.connector.logger)
                try await c.query(PostgresQuery(unsafeSQL: StoreSchema.versionTable), logger: self.connector.logger)
                let version = try await Self.schemaVersion(c, logger: self.connector.logger)
                let pending = try StoreSchema.pending(after: version)
                for m in pending {
                    for statement in m.statements {
                        try await c.query(PostgresQuery(unsafeSQL: statement), logger: self.connector.logger)
                    }
                    try await c.query(
                        "INSERT INTO braid_schema_version (version, summary) VALUES (\(m.version), \(m.summary))",
                        logger: self.connector.logger)
                }
                try await c.query("COMMIT", logger: self.connector.logger)
                return pending
            } catch {
                _ = try? await c.query("ROLLBACK", logger: self.connector.logger)
                throw error
            }
        }
    }

    public func directory() async throws -> SubscriberDirectory {
        try await withConnection { c in try await Self.readSnapshot(c, logger: self.connector.logger) }
    }

    public func apply(_ change: SubscriberChange) async throws {
        let logger = connector.logger
        try await withConnection { c in
            try await c.query("BEGIN", logger: logger)
            do {
                // Lock both tables against other writers (readers go on): two operators changing the
                // same subscriber at once are judged one after the other.
                try await c.query("LOCK TABLE braid_class, braid_subscriber IN SHARE ROW EXCLUSIVE MODE", logger: logger)
                let before = try await Self.readDirectory(c, logger: logger)
                _ = try before.applying(change)
                try await Self.write(change, c, logger: logger)
                try await c.query("COMMIT", logger: logger)
            } catch {
                _ = try? await c.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    private static func write(_ change: SubscriberChange, _ c: PostgresConnection, logger: Logger) async throws {
        switch change {
        case .addSubscriber(let s):
            try await c.query(
                "INSERT INTO braid_subscriber (name, class, enabled) VALUES (\(s.name), \(s.serviceClass), \(s.enabled))",
                logger: logger)
        case .setSubscriber(let name, let serviceClass, let enabled):
            try await c.query(
                """
                UPDATE braid_subscriber SET class = coalesce(\(serviceClass), class),
                    enabled = coalesce(\(enabled), enabled), changed_at = now() WHERE name = \(name)
                """, logger: logger)
        case .removeSubscriber(let name):
            try await c.query("DELETE FROM braid_subscriber WHERE name = \(name)", logger: logger)
        case .addClass(let k):
            try await c.query(
                """
                INSERT INTO braid_class (name, rate_down, rate_up, max_sessions)
                    VALUES (\(k.name), \(Int64(k.rateDown)), \(Int64(k.rateUp)), \(Int64(k.maxSessions)))
                """, logger: logger)
        case .setClass(let name, let rateDown, let rateUp, let maxSessions):
            try await c.query(
                """
                UPDATE braid_class SET rate_down = coalesce(\(rateDown.map(Int64.init)), rate_down),
                    rate_up = coalesce(\(rateUp.map(Int64.init)), rate_up),
                    max_sessions = coalesce(\(maxSessions.map(Int64.init)), max_sessions) WHERE name = \(name)
                """, logger: logger)
        case .removeClass(let name):
            try await c.query("DELETE FROM braid_class WHERE name = \(name)", logger: logger)
        }
    }

    /// The schema version recorded, 0 for a database `braid store init` never saw.
    static func schemaVersion(_ c: PostgresConnection, logger: Logger) async throws -> Int {
        let exists = try await c.query("SELECT to_regclass('braid_schema_version') IS NOT NULL", logger: logger)
        for try await present in exists.decode(Bool.self) where !present { return 0 }
        let rows = try await c.query("SELECT coalesce(max(version), 0) FROM braid_schema_version", logger: logger)
        for try await v in rows.decode(Int.self) { return v }
        return 0
    }

    /// Classes and subscribers in one snapshot (one REPEATABLE READ transaction when not inside one).
    static func readDirectory(_ c: PostgresConnection, logger: Logger) async throws -> SubscriberDirectory {
        var d = SubscriberDirectory()
        let classes = try await c.query(
            "SELECT name, rate_down, rate_up, max_sessions FROM braid_class ORDER BY name", logger: logger)
        for try await (name, down, up, max) in classes.decode((String, Int64, Int64, Int64).self) {
            d.classes.append(
                ServiceClass(
                    name: name, rateDown: UInt64(clamping: down), rateUp: UInt64(clamping: up),
                    maxSessions: UInt32(clamping: max)))
        }
        let subscribers = try await c.query(
            "SELECT name, class, enabled FROM braid_subscriber ORDER BY name", logger: logger)
        for try await (name, serviceClass, enabled) in subscribers.decode((String, String, Bool).self) {
            d.subscribers.append(Subscriber(name: name, serviceClass: serviceClass, enabled: enabled))
        }
        return d
    }

    /// Reads both tables inside one read-only snapshot, so a class and its subscribers agree.
    static func readSnapshot(_ c: PostgresConnection, logger: Logger) async throws -> SubscriberDirectory {
        try await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
        do {
            let d = try await readDirectory(c, logger: logger)
            try await c.query("COMMIT", logger: logger)
            return d
        } catch {
            _ = try? await c.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    private func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let c: PostgresConnection
        do {
            c = try await connector.connect()
        } catch {
            throw StoreError("cannot connect to \(connector.url): \(describe(error))")
        }
        do {
            let value = try await body(c)
            try? await c.close()
            return value
        } catch let e as StoreError {
            try? await c.close()
            throw e
        } catch {
            try? await c.close()
            throw StoreError("\(connector.url): \(describe(error))")
        }
    }
}
#endif
