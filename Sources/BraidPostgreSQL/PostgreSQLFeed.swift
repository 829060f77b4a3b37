#if PostgreSQLStore
import BraidConfig
import BraidCore
import BraidStore
import Dispatch
import Logging
import PostgresNIO
import Synchronization

/// A running concentrator's link to the PostgreSQL store. One connection at a time, which
/// LISTENs on `StoreSchema.channel` and reads the whole directory again after each
/// notification, and every `resyncSeconds` anyway (a notification is lost with its connection).
/// Usage is taken from the concentrator's meters every accounting interval whether or not the
/// database is there, kept in a bounded `UsageLedger`, and written when it is. A lost connection
/// is opened again with backoff; meanwhile the concentrator serves from the last directory.
public final class PostgreSQLFeed: SubscriberFeed, @unchecked Sendable {
    let connector: PostgreSQLConnector
    let logger: Logger
    /// Names this concentrator in `braid_usage.concentrator`.
    let concentratorName: String
    /// A full read of the directory at least this often, notifications or not.
    let resyncSeconds: UInt64
    private let state = Synchronization.Mutex(State())
    private var tasks: [Task<Void, Never>] = []
    /// The concentrator's meters, read at each period's end and once more at stop.
    private var usage: (@Sendable () -> [String: Traffic])?

    struct State {
        var ledger = UsageLedger()
        var periodStart: Int64 = Int64(wallClockMillis())
        var lastDirectory: SubscriberDirectory?
        var changed = false
        var stopping = false
    }

    public init(connector: PostgreSQLConnector, concentratorName: String, logger: Logger, resyncSeconds: UInt64 = 30) {
        self.connector = connector
        self.concentratorName = concentratorName
        self.logger = logger
        self.resyncSeconds = resyncSeconds
    }

    public func start(
        interval: UInt32, update: @escaping @Sendable (SubscriberDirectory) -> Void,
        usage: @escaping @Sendable () -> [String: Traffic]
    ) throws -> SubscriberDirectory {
        // The first read is waited for: a concentrator that never saw its subscribers has none
        // to serve, and an operator sees the reason at once instead of every gateway refused.
        let directory: SubscriberDirectory
        do {
            directory = try Blocking.run(timeoutSeconds: 15) { [connector] () async throws -> SubscriberDirectory in
                let c = try await connector.connect()
                defer { Task { try? await c.close() } }
                try await Self.checkSchema(c, logger: connector.logger)
                return try await PostgreSQLSubscriberStore.readSnapshot(c, logger: connector.logger)
            }
        } catch let e as StoreError {
            throw StoreError("cannot read subscribers from \(connector.url): \(e)")
        } catch {
            throw StoreError("cannot read subscribers from \(connector.url): \(describe(error))")
        }
        state.withLock {
            $0.lastDirectory = directory
            $0.periodStart = Int64(wallClockMillis())
        }
        self.usage = usage
        tasks.append(Task { await self.accountingLoop(interval: interval, usage: usage) })
        tasks.append(Task { await self.connectionLoop(update: update) })
        return directory
    }

    public func stop() {
        let first = state.withLock {
            let first = !$0.stopping
            $0.stopping = true
            return first
        }
        guard first, usage != nil else { return }
        for t in tasks { t.cancel() }
        tasks = []
        // Stopping: the bytes since the last period form one last, shorter one.
        if let usage { closePeriod(usage()) }
        // The last partial period, written if the database answers within a few seconds; what is
        // not written is lost with the process, and the log says how much.
        let left = try? Blocking.run(timeoutSeconds: 5) { () async throws -> Int in
            let c = try await self.connector.connect()
            defer { Task { try? await c.close() } }
            while try await self.writeBatch(c) {}
            return self.state.withLock { $0.ledger.rows.count }
        }
        let unwritten = state.withLock { $0.ledger.pendingTraffic }
        if left == 0 {
            logger.notice("store: usage written, disconnected")
        } else if !unwritten.isEmpty {
            let up = unwritten.values.reduce(0) { $0 + $1.up }
            let down = unwritten.values.reduce(0) { $0 + $1.down }
            logger.error(
                "store: usage not written at stop",
                metadata: ["subscribers": "\(unwritten.count)", "bytes_up": "\(up)", "bytes_down": "\(down)"])
        }
    }

    /// Refuses a database whose schema is not this braid's: `braid store init` first.
    static func checkSchema(_ c: PostgresConnection, logger: Logger) async throws {
        let version = try await PostgreSQLSubscriberStore.schemaVersion(c, logger: logger)
        guard version == StoreSchema.latest else {
            throw StoreError(
                "the store's schema is version \(version), this braid needs \(StoreSchema.latest): "
                    + "run `braid store init URL`")
        }
    }

    // MARK: accounting

    /// Closes one accounting period every `interval` seconds, database or not.
    private func accountingLoop(interval: UInt32, usage: @escaping @Sendable () -> [String: Traffic]) async {
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(interval) * 1_000_000_000)
            if Task.isCancelled { break }
            closePeriod(usage())
        }
    }

    private func closePeriod(_ traffic: [String: Traffic]) {
        let now = Int64(wallClockMillis())
        state.withLock {
            // A wall clock stepped back must not make a period end before it starts.
            let start = min($0.periodStart, now - 1)
            $0.ledger.close(periodStart: start, periodEnd: now, traffic: traffic)
            $0.periodStart = now
        }
    }

    /// Writes the next batch of usage rows; false when nothing was waiting.
    private func writeBatch(_ c: PostgresConnection) async throws -> Bool {
        guard let batch = state.withLock({ $0.ledger.nextBatch() }) else { return false }
        do {
            try await c.query("BEGIN", logger: connector.logger)
            for r in batch {
                try await c.query(
                    """
                    INSERT INTO braid_usage (concentrator, subscriber, period_start, period_end, bytes_up, bytes_down)
                    VALUES (\(concentratorName), \(r.subscriber), to_timestamp(\(r.periodStart)::bigint / 1000.0),
                        to_timestamp(\(r.periodEnd)::bigint / 1000.0), \(Int64(clamping: r.traffic.up)),
                        \(Int64(clamping: r.traffic.down)))
                    ON CONFLICT DO NOTHING
                    """, logger: connector.logger)
            }
            try await c.query("COMMIT", logger: connector.logger)
        } catch {
            state.withLock { $0.ledger.failed() }
            throw error
        }
        state.withLock { $0.ledger.written() }
        return true
    }

    // MARK: connection

    private func connectionLoop(update: @escaping @Sendable (SubscriberDirectory) -> Void) async {
        var delay: UInt64 = 500_000_000
        var down = false
        while !Task.isCancelled {
            do {
                let c = try await connector.connect()
                try await Self.checkSchema(c, logger: connector.logger)
                if down {
                    let waiting = state.withLock { $0.ledger.rows.count }
                    logger.notice("store reachable again", metadata: ["store": "\(connector.url)", "usage_rows_waiting": "\(waiting)"])
                }
                down = false
                delay = 500_000_000
                do {
                    try await serve(c, update: update)
                } catch {
                    try? await c.close()
                    throw error
                }
                try? await c.close()
            } catch {
                if Task.isCancelled { break }
                if !down {
                    logger.error(
                        "store unreachable; serving the last known subscribers, keeping usage in memory",
                        metadata: ["store": "\(connector.url)", "error": "\(describe(error))"])
                } else {
                    logger.warning(
                        "store still unreachable", metadata: ["error": "\(describe(error))", "retry_ms": "\(delay / 1_000_000)"])
                }
                down = true
            }
            // Backoff with jitter, 0.5 s doubling to 30 s: a fleet reconnecting after the database
            // restarts does not arrive all at once.
            let jittered = delay / 2 + UInt64.random(in: 0...(delay / 2))
            try? await Task.sleep(nanoseconds: jittered)
            delay = min(delay * 2, 30_000_000_000)
        }
    }

    /// One connection's life: LISTEN, read the directory, then every second write usage and read
    /// the directory again if a notification came or the resync is due. Returns or throws when
    /// the connection fails.
    private func serve(_ c: PostgresConnection, update: @escaping @Sendable (SubscriberDirectory) -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await c.listen(on: StoreSchema.channel) { notifications in
                    for try await _ in notifications {
                        self.state.withLock { $0.changed = true }
                    }
                }
                throw StoreError("the notification stream ended")
            }
            group.addTask {
                // LISTEN is sent before the first read: a change between the two is seen twice, never missed.
                try await Task.sleep(nanoseconds: 100_000_000)
                try await self.refresh(c, update: update)
                var lastRead = monotonicNanos()
                while !Task.isCancelled {
                    try await Task.sleep(nanoseconds: 200_000_000)
                    let changed = self.state.withLock {
                        let was = $0.changed
                        $0.changed = false
                        return was
                    }
                    if changed || monotonicNanos() - lastRead > self.resyncSeconds * 1_000_000_000 {
                        try await self.refresh(c, update: update)
                        lastRead = monotonicNanos()
                    }
                    while try await self.writeBatch(c) {}
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func refresh(_ c: PostgresConnection, update: @Sendable (SubscriberDirectory) -> Void) async throws {
        let d = try await PostgreSQLSubscriberStore.readSnapshot(c, logger: connector.logger)
        let isNew = state.withLock {
            let isNew = $0.lastDirectory != d
            $0.lastDirectory = d
            return isNew
        }
        if isNew { update(d) }
    }
}

/// Runs async work from synchronous code (the daemon's start and stop, the CLI) and waits at most
/// `timeoutSeconds`; past it the work is cancelled and a `StoreError` says so.
public enum Blocking {
    public static func run<T: Sendable>(
        timeoutSeconds: Int, _ work: @escaping @Sendable () async throws -> T
    ) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let task = Task {
            do { box.set(.success(try await work())) } catch { box.set(.failure(error)) }
            done.signal()
        }
        if done.wait(timeout: .now() + .seconds(timeoutSeconds)) == .timedOut {
            task.cancel()
            throw StoreError("no answer within \(timeoutSeconds) s")
        }
        return try box.get()
    }
}

/// The outcome of a `Blocking.run`, handed from its task to the waiting thread.
private final class ResultBox<T>: @unchecked Sendable {
    private let lock = Synchronization.Mutex<Void>(())
    private var result: Result<T, Error>?

    func set(_ r: Result<T, Error>) { lock.withLock { _ in result = r } }
    func get() throws -> T {
        guard let r = lock.withLock({ _ in result }) else { throw StoreError("no result") }
        return try r.get()
    }
}
#endif
