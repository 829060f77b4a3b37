import ArgumentParser
import BraidConfig
import BraidCore
import BraidDataPlane
import BraidStore
import Logging

#if PostgreSQLStore
import BraidPostgreSQL
#endif

#if canImport(Glibc)
import Glibc
#endif

/// `braid store init URL`: creates or migrates the PostgreSQL store's schema.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Manage the shared subscriber store (PostgreSQL).",
        subcommands: [StoreInit.self])
}

struct StoreInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create or migrate the store's schema; running it again changes nothing.",
        discussion: "URL: postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?host=/socket/dir&sslmode=…]")
    @Argument(help: "The store's URL, as `option store` names it (default: the configuration's).")
    var url: String?
    @Option(name: .long, help: "UCI package file, for the store and its store_password_file.")
    var config: String = "/etc/config/braid"
    @Option(name: .long, help: "File holding the password, when the URL has none.")
    var passwordFile: String?

    func run() throws {
        var passwordFile = self.passwordFile
        let location: StoreLocation
        if let url {
            do {
                location = try StoreLocation(url)
            } catch {
                throw ValidationError("store URL \(StoreLocation.redacted(url)): \(error.message)")
            }
        } else {
            let c = try readConfig(config) { try $0.concentrator() }
            location = c.store
            passwordFile = passwordFile ?? c.storePasswordFile
        }
        guard case .postgreSQL(let u) = location else {
            throw ValidationError("the uci store needs no init: its subscribers are the file's sections")
        }
        #if PostgreSQLStore
        let store = try PostgreSQLSubscriberStore(connector: connector(u, passwordFile))
        let applied = try storeCall { try await store.initialise() }
        if applied.isEmpty {
            print("\(u): schema at version \(StoreSchema.latest), nothing to do")
        } else {
            for m in applied { print("\(u): applied migration \(m.version): \(m.summary)") }
        }
        #else
        _ = u
        throw noPostgreSQL
        #endif
    }
}

/// `braid subscriber …`: subscribers and classes in whichever store the configuration names.
struct SubscriberCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscriber",
        abstract: "Manage subscribers and classes in the configured store (uci file or PostgreSQL).",
        discussion: """
            With the uci store the file is changed as `braid uci` would change it, checked, written, and a \
            running concentrator is asked to reload. With PostgreSQL every concentrator sees the change within 2 s.
            """,
        subcommands: [
            SubscriberAdd.self, SubscriberSet.self, SubscriberEnable.self, SubscriberDisable.self,
            SubscriberRemove.self, SubscriberList.self, ClassCommand.self,
        ])
}

struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "UCI package file naming the store (option store).")
    var config: String = "/etc/config/braid"
}

struct SubscriberAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a subscriber.")
    @OptionGroup var options: StoreOptions
    @Argument(help: "The gateway certificate's common name.") var name: String
    @Option(name: .customLong("class"), help: "Its service class.") var serviceClass: String
    @Flag(help: "Add it disabled.") var disabled = false

    func run() throws {
        try change(options, .addSubscriber(Subscriber(name: name, serviceClass: serviceClass, enabled: !disabled)))
    }
}

struct SubscriberSet: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Change a subscriber's class.")
    @OptionGroup var options: StoreOptions
    @Argument var name: String
    @Option(name: .customLong("class"), help: "Its new service class.") var serviceClass: String

    func run() throws { try change(options, .setSubscriber(name: name, serviceClass: serviceClass, enabled: nil)) }
}

struct SubscriberEnable: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enable", abstract: "Accept a subscriber again.")
    @OptionGroup var options: StoreOptions
    @Argument var name: String

    func run() throws { try change(options, .setSubscriber(name: name, serviceClass: nil, enabled: true)) }
}

struct SubscriberDisable: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable", abstract: "Refuse a subscriber: its control channels close, its keys go.")
    @OptionGroup var options: StoreOptions
    @Argument var name: String

    func run() throws { try change(options, .setSubscriber(name: name, serviceClass: nil, enabled: false)) }
}

struct SubscriberRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a subscriber.")
    @OptionGroup var options: StoreOptions
    @Argument var name: String

    func run() throws { try change(options, .removeSubscriber(name)) }
}

struct SubscriberList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List classes and subscribers.")
    @OptionGroup var options: StoreOptions

    func run() throws {
        let d = try openStore(options).directory()
        print("class                rate_down     rate_up  max_sessions")
        for c in d.classes {
            print("\(pad(c.name, 16)) \(lpad("\(c.rateDown)", 12)) \(lpad("\(c.rateUp)", 11)) \(lpad("\(c.maxSessions)", 13))")
        }
        print("")
        print("subscriber                       class             enabled")
        for s in d.subscribers {
            print("\(pad(s.name, 32)) \(pad(s.serviceClass, 16)) \(s.enabled ? "yes" : "no")")
        }
    }

    private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    private func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
}

struct ClassCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "class", abstract: "Manage service classes.",
        subcommands: [ClassAdd.self, ClassSet.self, ClassRemove.self])
}

struct ClassLimits: ParsableArguments {
    @Option(help: "Bits per second towards the subscriber (k, M, G); 0 is unlimited.") var rateDown: String?
    @Option(help: "Bits per second from the subscriber; 0 is unlimited.") var rateUp: String?
    @Option(help: "Open data connections per subscriber; 0 is unlimited.") var maxSessions: UInt32?

    func rate(_ text: String?, _ option: String) throws -> UInt64? {
        guard let text else { return nil }
        guard case .number(let n) = try? ConfigSchema.parse(text, as: .rate) else {
            throw ValidationError("--\(option) \(text): must be bits per second, a whole number with k, M or G")
        }
        return n
    }
}

struct ClassAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a service class.")
    @OptionGroup var options: StoreOptions
    @Argument var name: String
    @OptionGroup var limits: ClassLimits

    func run() throws {
        try change(
            options,
            .addClass(
                ServiceClass(
                    name: name, rateDown: try limits.rate(limits.rateDown, "rate-down") ?? 0,
                    rateUp: try limits.rate(limits.rateUp, "rate-up") ?? 0, maxSessions: limits.maxSessions ?? 0)))
    }
}

struct ClassSet: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Change a class's limits.")
    @OptionGroup var options: StoreOptions
    @Argument var name: String
    @OptionGroup var limits: ClassLimits

    func run() throws {
        try change(
            options,
            .setClass(
                name: name, rateDown: try limits.rate(limits.rateDown, "rate-down"),
                rateUp: try limits.rate(limits.rateUp, "rate-up"), maxSessions: limits.maxSessions))
    }
}

struct ClassRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Remove a class no subscriber uses.")
    @OptionGroup var options: StoreOptions
    @Argument var name: String

    func run() throws { try change(options, .removeClass(name)) }
}

// MARK: - wiring

let noPostgreSQL = StoreError("this build has no PostgreSQL support (built without the PostgreSQLStore trait)")

/// The store a command works on, synchronous at the command line.
struct OpenedStore {
    var directory: () throws -> SubscriberDirectory
    var apply: (SubscriberChange) throws -> Void
    var location: StoreLocation
    var statusSocket: String
}

func openStore(_ options: StoreOptions) throws -> OpenedStore {
    let c = try readConfig(options.config) { try $0.concentrator() }
    switch c.store {
    case .uci:
        let store = UCISubscriberStore(path: options.config)
        return OpenedStore(
            directory: { try store.directory() }, apply: { try store.apply($0) }, location: .uci,
            statusSocket: c.statusSocket)
    case .postgreSQL(let url):
        #if PostgreSQLStore
        let store = PostgreSQLSubscriberStore(connector: try connector(url, c.storePasswordFile))
        return OpenedStore(
            directory: { try storeCall { try await store.directory() } },
            apply: { change in try storeCall { try await store.apply(change) } }, location: c.store,
            statusSocket: c.statusSocket)
        #else
        _ = url
        throw noPostgreSQL
        #endif
    }
}

/// Makes one change, then, with the uci store, asks a running concentrator to reload.
func change(_ options: StoreOptions, _ change: SubscriberChange) throws {
    let store = try openStore(options)
    do {
        try store.apply(change)
    } catch let e as StoreError {
        FileHandleStderr.write("braid subscriber: \(e)\n")
        throw ExitCode(1)
    }
    guard store.location == .uci else {
        print("done: \(store.location)")
        return
    }
    print("written: \(options.config)")
    do {
        let answer = ReloadAnswer(text: try LocalQueryServer.ask(path: store.statusSocket, question: "reload"))
        switch answer {
        case .reloaded: print(answer.text)
        case .refused(let lines):
            FileHandleStderr.write("the running concentrator refused the reload:\n" + lines.joined(separator: "\n") + "\n")
            throw ExitCode(1)
        }
    } catch let e as ExitCode {
        throw e
    } catch {
        print("no concentrator answers on \(store.statusSocket) (\(error)); it reads the file when it starts")
    }
}

#if PostgreSQLStore
func connector(_ url: PostgreSQLURL, _ passwordFile: String?) throws -> PostgreSQLConnector {
    var logger = Logger(label: "braid.store")
    logger.logLevel = .warning
    return try PostgreSQLConnector(url: url, passwordFile: passwordFile, logger: logger)
}

/// Runs a store operation from the command line, within 30 s.
func storeCall<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    do {
        return try Blocking.run(timeoutSeconds: 30, work)
    } catch let e as StoreError {
        throw e
    } catch {
        throw StoreError(describe(error))
    }
}
#endif

/// The concentrator's feed from a shared store; nil for the uci store.
func storeFeed(_ config: ConcentratorConfig, logger: Logger) throws -> (any SubscriberFeed)? {
    guard case .postgreSQL(let url) = config.store else { return nil }
    #if PostgreSQLStore
    let connector: PostgreSQLConnector
    do {
        connector = try PostgreSQLConnector(url: url, passwordFile: config.storePasswordFile, logger: logger)
    } catch {
        logger.error("cannot start: \(error)")
        throw ExitCode(1)
    }
    var host = [CChar](repeating: 0, count: 256)
    gethostname(&host, host.count - 1)
    // Names this concentrator's usage rows: two concentrators on one host listen on different addresses.
    let name = "\(String(cString: host)) \(Endpoint(address: config.listen, port: config.port))"
    return PostgreSQLFeed(connector: connector, concentratorName: name, logger: logger)
    #else
    _ = url
    logger.error("cannot start: \(noPostgreSQL)")
    throw ExitCode(1)
    #endif
}
