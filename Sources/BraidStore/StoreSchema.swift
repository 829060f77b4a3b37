/// The PostgreSQL store's schema as numbered migrations, applied in order by `braid store init`
/// inside one transaction under an advisory lock, each recorded in `braid_schema_version`. A
/// migration is never edited once released: a change is a new one appended, so a database at
/// any version reaches the latest by running what it lacks, and running init again does nothing.
public enum StoreSchema {
    public struct Migration: Sendable {
        public var version: Int
        public var summary: String
        /// One statement each: the extended query protocol takes one at a time.
        public var statements: [String]
    }

    /// The channel every concentrator LISTENs on; a trigger notifies it after any statement that
    /// changes a class or a subscriber.
    public static let channel = "braid_subscribers"

    /// Key of the advisory lock that serialises two `braid store init` runs.
    public static let lockKey: Int64 = 0x6272_6169_6473_746f

    /// Kept out of `migrations` because it must exist before the version can be read.
    public static let versionTable = """
        CREATE TABLE IF NOT EXISTS braid_schema_version (
            version integer PRIMARY KEY,
            summary text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())
        """

    public static let migrations: [Migration] = [
        Migration(
            version: 1, summary: "classes, subscribers, usage rows, change notifications",
            statements: [
                """
                CREATE TABLE braid_class (
                    name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_]{1,255}$'),
                    rate_down bigint NOT NULL DEFAULT 0 CHECK (rate_down >= 0),
                    rate_up bigint NOT NULL DEFAULT 0 CHECK (rate_up >= 0),
                    max_sessions bigint NOT NULL DEFAULT 0 CHECK (max_sessions BETWEEN 0 AND 4294967295))
                """,
                """
                CREATE TABLE braid_subscriber (
                    name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_]{1,64}$'),
                    class text NOT NULL REFERENCES braid_class (name) ON UPDATE CASCADE,
                    enabled boolean NOT NULL DEFAULT true,
                    changed_at timestamptz NOT NULL DEFAULT now())
                """,
                // No foreign key to braid_subscriber: a removed subscriber's usage is still billed.
                // The key makes a row written twice (the commit's answer lost) count once.
                """
                CREATE TABLE braid_usage (
                    concentrator text NOT NULL,
                    subscriber text NOT NULL,
                    period_start timestamptz NOT NULL,
                    period_end timestamptz NOT NULL,
                    bytes_up bigint NOT NULL CHECK (bytes_up >= 0),
                    bytes_down bigint NOT NULL CHECK (bytes_down >= 0),
                    PRIMARY KEY (concentrator, subscriber, period_start))
                """,
                "CREATE INDEX braid_usage_by_subscriber ON braid_usage (subscriber, period_start)",
                """
                CREATE FUNCTION braid_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_notify('\(channel)', TG_TABLE_NAME);
                    RETURN NULL;
                END
                $$
                """,
                """
                CREATE TRIGGER braid_class_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON braid_class
                    FOR EACH STATEMENT EXECUTE FUNCTION braid_notify_change()
                """,
                """
                CREATE TRIGGER braid_subscriber_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                    ON braid_subscriber FOR EACH STATEMENT EXECUTE FUNCTION braid_notify_change()
                """,
            ])
    ]

    /// The version a concentrator needs; it refuses to start on an older database.
    public static var latest: Int { migrations.last?.version ?? 0 }

    /// The migrations a database at `version` lacks, in order. A database newer than this build
    /// is an error: this braid would not know what it writes.
    public static func pending(after version: Int) throws(StoreError) -> [Migration] {
        guard version <= latest else {
            throw StoreError("the database's schema is version \(version), newer than this braid's \(latest)")
        }
        return migrations.filter { $0.version > version }
    }
}
