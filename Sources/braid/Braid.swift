import ArgumentParser
import BraidConcentrator
import BraidConfig
import BraidDataPlane
import BraidCore
import BraidGateway
import BraidStore
import BraidWire
import Dispatch
import Logging

#if canImport(Glibc)
import Glibc
#endif

@main
struct Braid: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "braid",
        abstract: "Multi-WAN bonding over Multipath TCP: gateway (CPE) and concentrator.",
        subcommands: [
            Gateway.self, Concentrator.self, Status.self, Check.self, UCI.self, ConfigCommand.self, PKICommand.self,
            GenKey.self, Reload.self, StoreCommand.self, SubscriberCommand.self,
        ])
}

struct RoleOptions: ParsableArguments {
    @Option(name: .long, help: "UCI package file.")
    var config: String = "/etc/config/braid"

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"
}

struct Gateway: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway (CPE) in the foreground.")
    @OptionGroup var options: RoleOptions

    func run() throws {
        let logger = try makeLogger("gateway", level: options.logLevel)
        let config = try readConfig(options.config) { try $0.gateway() }
        let service = GatewayService(config: config, logger: logger)
        service.configFile = options.config
        try runUntilSignal(logger: logger, reload: service.reload) {
            try service.start()
            keepCapabilities(GatewayService.capabilitiesAfterStart, logger: logger)
            return service.stop
        }
    }
}

struct Concentrator: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the concentrator in the foreground.")
    @OptionGroup var options: RoleOptions

    func run() throws {
        let logger = try makeLogger("concentrator", level: options.logLevel)
        let config = try readConfig(options.config) { try $0.concentrator() }
        let service = ConcentratorService(config: config, logger: logger)
        service.configFile = options.config
        service.feed = try storeFeed(config, logger: logger)
        try runUntilSignal(logger: logger, reload: service.reload) {
            try service.start()
            keepCapabilities(ConcentratorService.capabilitiesAfterStart, logger: logger)
            return service.stop
        }
    }
}

/// Once the role runs, gives up every capability it no longer uses, on every thread and, where
/// allowed, from the bounding set. Before the signal handlers below start libdispatch's threads,
/// which block the signal the drop uses. A failure is logged, not fatal: the daemon runs as
/// before this step, and the operator sees which threads kept more.
func keepCapabilities(_ keep: Capabilities, logger: Logger) {
    do {
        let now = try Capabilities.keepOnly(keep)
        logger.notice(
            "capabilities reduced to what the running daemon uses",
            metadata: ["permitted": "\(now.permitted)", "bounding": "\(now.bounding)"])
    } catch {
        logger.error("cannot reduce capabilities", metadata: ["error": "\(error)"])
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the running gateway's uplinks and sessions, or the concentrator's subscribers.")
    @Option(name: .long, help: "The daemon's status socket (default: the config's status_socket).")
    var socket: String?
    @Option(name: .long, help: "UCI package file, to find the status socket.")
    var config: String = "/etc/config/braid"
    @Flag(name: .long, help: "Print the daemon's JSON document as it is, for scripts.")
    var json = false

    /// The socket of the role the configuration file is for (its gateway or concentrator
    /// section), else the gateway's default, else the concentrator's if only that one exists.
    func socketPath() -> String {
        if let socket { return socket }
        if let text = try? BraidConfigReader.load(path: config) {
            let roles = [("gateway", "/run/braid/gateway.sock"), ("concentrator", "/run/braid/concentrator.sock")]
            for (type, fallback) in roles {
                guard let section = text.sections(ofType: type).first else { continue }
                return section.option("status_socket")?.values.last ?? fallback
            }
        }
        let gateway = "/run/braid/gateway.sock"
        let concentrator = "/run/braid/concentrator.sock"
        return access(gateway, F_OK) != 0 && access(concentrator, F_OK) == 0 ? concentrator : gateway
    }

    func run() throws {
        let path = socketPath()
        let answer: String
        do {
            answer = try LocalQueryServer.ask(path: path, question: "status")
        } catch {
            FileHandleStderr.write("braid status: \(error)\n")
            throw ExitCode(1)
        }
        if json {
            print(answer, terminator: answer.hasSuffix("\n") ? "" : "\n")
        } else {
            print(StatusTable.render(answer), terminator: "")
        }
    }
}

struct GenKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "genkey", abstract: "Print a new random pre-shared key (32 bytes, base64).")

    func run() throws {
        print(PresharedKey.encode(SecureRandom.bytes(PresharedKey.size)))
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration file; prints every problem as FILE:LINE: section.option: message (value).")
    @Option(name: .long, help: "UCI package file.")
    var config: String = "/etc/config/braid"
    @Argument(help: "Role to check: gateway or concentrator (default: the role of the file's sections).")
    var role: String?

    func run() throws {
        var role: ConfigRole? = nil
        if let text = self.role {
            guard let r = ConfigRole(rawValue: text) else {
                throw ValidationError("role must be gateway or concentrator (\(text))")
            }
            role = r
        }
        let package: UCIPackage
        do {
            package = try BraidConfigReader.load(path: config)
        } catch let e as ConfigError {
            FileHandleStderr.write(e.description + "\n")
            throw ExitCode(1)
        }
        let (roles, problems) = BraidConfigReader(package: package).check(role: role)
        guard problems.isEmpty else {
            FileHandleStderr.write(problems.map { $0.description + "\n" }.joined())
            throw ExitCode(1)
        }
        print("\(config): ok (\(roles.map(\.rawValue).joined(separator: ", ")))")
    }
}

/// Reads and validates the configuration; prints every problem as `FILE:LINE: message`.
func readConfig<T>(_ path: String, _ read: (inout BraidConfigReader) throws -> T) throws -> T {
    do {
        var reader = BraidConfigReader(package: try BraidConfigReader.load(path: path))
        return try read(&reader)
    } catch let e as ConfigErrors {
        FileHandleStderr.write(e.description + "\n")
        throw ExitCode(2)
    } catch let e as ConfigError {
        FileHandleStderr.write(e.description + "\n")
        throw ExitCode(2)
    }
}

func makeLogger(_ label: String, level: String) throws -> Logger {
    guard let l = Logger.Level(rawValue: level) else {
        throw ValidationError("unknown log level (\(level))")
    }
    LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    var logger = Logger(label: "braid.\(label)")
    logger.logLevel = l
    return logger
}

/// Starts a role, waits for SIGTERM or SIGINT, then stops it so kernel state is removed. SIGHUP
/// calls `reload`, which hands the work to the role's own thread and returns.
func runUntilSignal(logger: Logger, reload: (() -> Void)? = nil, start: () throws -> () -> Void) throws {
    // A write or splice(2) to a socket whose peer has reset it raises SIGPIPE, and its default
    // action ends the process: one LAN client closing a tab, or one origin resetting, would take
    // every session with it. Ignored, the call fails with EPIPE and only that session ends. The
    // relay's send()s also pass MSG_NOSIGNAL, but splice(2) has no such flag, and the writes of
    // swift-nio and OpenSSL are not ours (swift-nio ignores SIGPIPE itself, but only once it opens
    // its first socket: a daemon without the TLS control channel never does).
    signal(SIGPIPE, SIG_IGN)
    let stop: () -> Void
    do {
        stop = try start()
    } catch {
        logger.error("cannot start: \(error)")
        throw ExitCode(1)
    }
    let done = DispatchSemaphore(value: 0)
    let queue = DispatchQueue(label: "braid.signals")
    var sources: [DispatchSourceSignal] = []
    for sig in [SIGTERM, SIGINT] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
        source.setEventHandler {
            logger.notice("signal \(sig) received, stopping")
            done.signal()
        }
        source.resume()
        sources.append(source)
    }
    if let reload {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
        source.setEventHandler {
            logger.notice("signal \(SIGHUP) received, reloading the configuration")
            reload()
        }
        source.resume()
        sources.append(source)
    }
    done.wait()
    stop()
}

enum FileHandleStderr {
    static func write(_ s: String) {
        fputs(s, stderr)
    }
}
