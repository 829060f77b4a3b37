import BraidConfig
import BraidCore
import BraidDataPlane
import BraidTLS
import BraidWire

/// Several concentrators (`list server`): a control channel to each, each with its own session
/// keys and announced addresses; `ConcentratorChoice` decides which one new sessions go to, and
/// this moves the data path (probes, first subflows, the keys data connections are sealed with)
/// when it changes its mind. Sessions already running stay where they are.
extension GatewayService {
    /// How often the choice is looked at: a killed concentrator's channel closes at once and a
    /// silent one's probes fail within `down_after`; a quarter second adds little to either.
    static let serverTickNanos: UInt64 = 250_000_000

    static func nanos(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }

    /// How long a control channel must stay up after the probes found its concentrator unreachable
    /// to count as proof of life: past three unanswered keepalives it would have been closed, plus
    /// one interval and one tick of slack.
    static func confirmNanos(_ config: GatewayConfig) -> UInt64 {
        UInt64(config.keepalive) * 4_000_000_000 + serverTickNanos
    }

    /// The TLS context of the control channel to `host`: the certificate must carry `server_name`
    /// with one concentrator, the entry itself with several. nil without ca, cert and key.
    func tlsContext(for host: ConcentratorHost) throws -> TLSContext? {
        guard let files = config.tls else { return nil }
        let name = config.servers.count > 1 ? host.description : config.serverName
        return try TLSContext(role: .client(serverName: name), ca: files.ca, certificate: files.cert, key: files.key)
    }

    /// Resolves every entry. One concentrator that does not resolve stops the start; with several,
    /// only none resolving does (the others are looked up again every `resolveIntervalNanos`).
    static func resolveServers(_ hosts: [ConcentratorHost]) throws -> [ConcentratorHost: [IPAddress]] {
        var out: [ConcentratorHost: [IPAddress]] = [:]
        var firstError: Error?
        for host in hosts {
            do {
                out[host] = try resolveServer(host)
            } catch {
                if hosts.count == 1 { throw error }
                firstError = firstError ?? error
                out[host] = []
            }
        }
        if let firstError, out.values.allSatisfy(\.isEmpty) { throw firstError }
        return out
    }

    /// Opens the control channel to `host` (without TLS, only its keys: the pre-shared key).
    func openLink(_ host: ConcentratorHost) throws {
        guard links[host] == nil, let reactor = control?.reactors.first else { return }
        let keys = DataKeys(preshared: preshared, identity: config.macIdentity)
        var link = ConcentratorLink(keys: keys)
        if let tls = try tlsContext(for: host) {
            let directory = self.directory
            let source = supervisor?.preferredSource
            let client = ControlClient(
                name: "\(host)", port: config.controlPort, tls: tls, keys: keys, keepaliveSeconds: config.keepalive,
                target: { directory.target(for: host, from: source?.get()?.source) }, logger: logger)
            client.onAddresses = { [weak self] list in
                reactor.execute { self?.announced(host, list) }
            }
            client.onUplinkShares = { [weak self] list in
                reactor.execute { self?.sharesPushed(host, list) }
            }
            client.onOperatorRules = { [weak self] rules in
                reactor.execute { self?.rulesPushed(host, rules) }
            }
            client.start()
            link.client = client
        }
        links[host] = link
    }

    /// Closes the control channel to a concentrator a reload removed.
    func closeLink(_ host: ConcentratorHost) {
        links.removeValue(forKey: host)?.client?.stop()
        directory.remove(host)
    }

    private func announced(_ host: ConcentratorHost, _ list: [IPAddress]) {
        guard var choice else { return }
        let inUse = choice.announced(host, list)
        self.choice = choice
        if let s = choice.servers.first(where: { $0.host == host }) { directory.set(host, s.addresses) }
        if inUse { supervisor?.setServers(choice.current.addresses) }
    }

    /// The class's uplink shares and the operator's rules come from the concentrator in use: what a
    /// standby pushes is kept with its link and applied when new sessions move to it.
    private func sharesPushed(_ host: ConcentratorHost, _ list: [UplinkShare]) {
        links[host]?.shares = list
        if host == choice?.current.host { supervisor?.setClassShares(list) }
    }

    private func rulesPushed(_ host: ConcentratorHost, _ rules: [ControlMessage.OperatorRule]) {
        links[host]?.operatorRules = rules
        if host == choice?.current.host { applyOperatorRules(rules) }
    }

    /// A name's new records: probes and new sessions follow when it is the concentrator in use.
    func resolvedServer(_ host: ConcentratorHost, _ addresses: [IPAddress]) {
        guard var choice else { return }
        let inUse = choice.resolved(host, addresses)
        self.choice = choice
        if let s = choice.servers.first(where: { $0.host == host }) { directory.set(host, s.addresses) }
        if inUse { supervisor?.setServers(choice.current.addresses) }
    }

    func scheduleServerTick() {
        control?.reactors.first?.schedule(afterNanos: Self.serverTickNanos) { [weak self] in
            guard let self, self.supervisor != nil else { return }
            self.serverTick()
            self.scheduleServerTick()
        }
    }

    /// Feeds what the channels and probes say to the choice, and follows its decision.
    func serverTick() {
        guard var choice, let supervisor else { return }
        let now = monotonicNanos()
        for (host, link) in links {
            guard let client = link.client else { continue }
            let generation = client.generation
            if generation != link.generation {
                // It went down and up again since the last look: its health starts again now.
                choice.channel(host, up: false, reason: client.lastError ?? "reconnected", now: now)
                links[host]?.generation = generation
            }
            choice.channel(host, up: client.established, reason: client.lastError ?? "", now: now)
        }
        choice.probes(reachable: supervisor.concentratorReachable(), now: now)
        let decision = choice.decide(now: now)
        self.choice = choice
        if let decision { follow(decision) }
    }

    /// Moves new sessions to the concentrator `decision` names.
    func follow(_ decision: ConcentratorChoice.Switch) {
        guard let choice else { return }
        logger.notice(
            "new sessions go to another concentrator",
            metadata: [
                "from": "\(decision.from.map { "\($0)" } ?? "none")", "to": "\(decision.to)",
                "reason": "\(decision.reason)",
            ])
        activeKeys.set(links[decision.to]?.keys)
        supervisor?.useConcentrator(choice.current.addresses)
        if let shares = links[decision.to]?.shares { supervisor?.setClassShares(shares) }
        if let rules = links[decision.to]?.operatorRules { applyOperatorRules(rules) }
    }

    /// A reload's `server` list: channels to concentrators that stay (and their sessions) are
    /// kept, removed ones closed, new ones opened and resolved.
    func reconfigureServers(_ new: GatewayConfig) {
        guard var choice else { return }
        choice.holddownNanos = Self.nanos(new.serverHolddown)
        choice.confirmNanos = Self.confirmNanos(new)
        let old = config.servers
        guard old != new.servers else {
            self.choice = choice
            return
        }
        var known: [ConcentratorHost: [IPAddress]] = [:]
        for case .address(let a) in new.servers { known[.address(a)] = [a] }
        let decision = choice.replace(hosts: new.servers, resolved: known, now: monotonicNanos())
        self.choice = choice
        for host in old where !new.servers.contains(host) { closeLink(host) }
        for s in choice.servers { directory.set(s.host, s.addresses) }
        // Opened under the new configuration: a single concentrator's TLS name is server_name.
        let running = config
        config = new
        for host in new.servers where !old.contains(host) {
            do {
                try openLink(host)
            } catch {
                logger.error(
                    "cannot open the control channel", metadata: ["concentrator": "\(host)", "error": "\(error)"])
            }
        }
        config = running
        if let decision { follow(decision) }
    }
}

/// One concentrator's control channel and the keys it granted.
struct ConcentratorLink {
    var keys: DataKeys
    /// What this concentrator last pushed for the subscriber's class; nil: nothing yet.
    var shares: [UplinkShare]?
    var operatorRules: [ControlMessage.OperatorRule]?
    /// nil without TLS (the pre-shared key only).
    var client: ControlClient?
    /// `client.generation` at the last look.
    var generation: UInt64 = 0

    init(keys: DataKeys) { self.keys = keys }
}

/// The keys of the concentrator in use: set on the control reactor when it changes, read by
/// every data reactor at each new connection.
final class ActiveKeys: @unchecked Sendable {
    private let lock = Mutex()
    private var keys: DataKeys?

    func set(_ k: DataKeys?) { lock.withLock { keys = k } }
    func get() -> DataKeys? { lock.withLock { keys } }
}

/// Every concentrator's addresses, for the control channels' threads: each dials its own
/// concentrator over the uplink new sessions start on.
final class ConcentratorDirectory: @unchecked Sendable {
    private let lock = Mutex()
    private var addresses: [ConcentratorHost: ConcentratorAddresses] = [:]

    func set(_ host: ConcentratorHost, _ a: ConcentratorAddresses) { lock.withLock { addresses[host] = a } }
    func remove(_ host: ConcentratorHost) { _ = lock.withLock { addresses.removeValue(forKey: host) } }

    /// Where `host`'s control channel dials: its address of `source`'s family from `source`, else
    /// its first address from wherever the routing table picks; nil when none is known.
    func target(for host: ConcentratorHost, from source: IPAddress?) -> TransparentForwarder.FirstSubflow? {
        guard let a = lock.withLock({ addresses[host] }), let first = a.all.first else { return nil }
        if let source, let path = a.path(from: [source]) {
            return .init(source: path.source, server: path.server, bothFamilies: a.bothFamilies)
        }
        return .init(source: nil, server: first, bothFamilies: a.bothFamilies)
    }
}
