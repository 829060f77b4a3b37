import BraidCore

/// An option the running daemon cannot take over: it is bound into a socket, a listener, a kernel
/// table or a key already in use, so only a restart applies it. A reload that changes one is refused.
public struct FixedOptionChange: Equatable, Sendable, CustomStringConvertible {
    /// The option's name in the file (`server`, `tproxy_port`).
    public var option: String
    public var old: String
    public var new: String

    public init(option: String, old: String, new: String) {
        self.option = option
        self.old = old
        self.new = new
    }

    public var description: String { "\(option): \(old) -> \(new)" }
}

/// One uplink section present before and after a reload whose settings differ. The uplink keeps
/// its identity (its section name), so whatever did not change about it (its probes' history, its
/// sessions' subflows when its address stays) is kept.
public struct UplinkChange: Equatable, Sendable {
    public var old: UplinkConfig
    public var new: UplinkConfig
    /// The routing table in use before and after: a default table moves with the uplink's position.
    public var oldTable: UInt32
    public var newTable: UInt32

    public var name: String { new.name }
    public var deviceChanged: Bool { old.device != new.device }
    public var tableChanged: Bool { oldTable != newTable }

    /// What changed, as `option old -> new` phrases.
    public var details: [String] {
        var out: [String] = []
        if old.device != new.device { out.append("device \(old.device) -> \(new.device)") }
        if old.role != new.role { out.append("role \(old.role) -> \(new.role)") }
        if old.gateway != new.gateway {
            out.append("gateway \(old.gateway?.description ?? "learned") -> \(new.gateway?.description ?? "learned")")
        }
        if oldTable != newTable { out.append("table \(oldTable) -> \(newTable)") }
        if old.share != new.share {
            out.append("share \(old.share.map { "\($0)" } ?? "100") -> \(new.share.map { "\($0)" } ?? "100")")
        }
        if old.quota != new.quota {
            out.append("quota \(old.quota?.description ?? "none") -> \(new.quota?.description ?? "none")")
        }
        if old.subflows != new.subflows { out.append("subflows \(old.subflows) -> \(new.subflows)") }
        return out
    }
}

/// The probe settings of the gateway, which a reload may change for every uplink at once.
public struct ProbeTimers: Equatable, Sendable, CustomStringConvertible {
    public var interval: UInt32
    public var downAfter: UInt32
    public var upAfter: UInt32

    public var description: String { "probe_interval \(interval), down_after \(downAfter), up_after \(upAfter)" }
}

extension GatewayConfig {
    /// Each uplink's routing table: its own `table`, else `table_base` + 1 + its position.
    public var uplinkTables: [String: UInt32] {
        var out: [String: UInt32] = [:]
        for (i, u) in uplinks.enumerated() { out[u.name] = u.table ?? tableBase &+ 1 &+ UInt32(i) }
        return out
    }

    public var probeTimers: ProbeTimers {
        ProbeTimers(interval: probeInterval, downAfter: downAfter, upAfter: upAfter)
    }
}

/// What a reload changes in a running gateway: computed from the running and the new
/// configuration alone, so the daemon applies exactly this and touches nothing else.
///
/// Uplinks are matched by section name: a renamed section is one uplink removed and another added.
public struct GatewayConfigDiff: Equatable, Sendable {
    /// Options that need a restart; a reload with any is refused as a whole.
    public var fixed: [FixedOptionChange] = []
    /// In the new configuration's order.
    public var uplinksAdded: [UplinkConfig] = []
    /// In the running configuration's order.
    public var uplinksRemoved: [UplinkConfig] = []
    public var uplinksChanged: [UplinkChange] = []
    /// Uplink names in the new order when the order of the uplinks kept changed (it decides which
    /// uplink new connections start on).
    public var uplinkOrder: [String]? = nil
    public var lanDevicesAdded: [String] = []
    public var lanDevicesRemoved: [String] = []
    public var probeTimers: (old: ProbeTimers, new: ProbeTimers)? = nil
    public var maxSubflows: (old: UInt32, new: UInt32)? = nil
    /// `holddown` seconds: judged by the new value from the reload on.
    public var holddown: (old: Double, new: Double)? = nil
    /// `quic`: the nftables rule that refuses QUIC comes or goes.
    public var quic: (old: QUICMode, new: QUICMode)? = nil
    /// The status page moves (or starts, or stops): its listener is opened again, nothing else.
    public var webListen: (old: ListenerSetting, new: ListenerSetting)? = nil
    /// The rules or `default_action` changed: the nftables rule chain is replaced in one transaction,
    /// and connections already running keep the path they started on.
    public var rules: (old: [TrafficRule], new: [TrafficRule])? = nil
    public var defaultAction: (old: RuleAction, new: RuleAction)? = nil
    /// `server` (the concentrators, in order of preference): channels are opened and closed to match.
    public var servers: (old: [ConcentratorHost], new: [ConcentratorHost])? = nil
    public var serverHolddown: (old: Double, new: Double)? = nil

    public init(from old: GatewayConfig, to new: GatewayConfig) {
        var fixed = FixedOptions()
        fixed.compare("port", old.port, new.port)
        fixed.compare("control_port", old.controlPort, new.controlPort)
        fixed.compare("psk_file", old.pskFile, new.pskFile)
        fixed.compare(tls: old.tls, new.tls)
        // An unset server_name follows the server: reported with it, not on its own.
        let followsServer = old.serverName == old.server.description && new.serverName == new.server.description
        if !followsServer { fixed.compare("server_name", old.serverName, new.serverName) }
        // The concentrators change live: channels to those that stay, and their sessions, are kept.
        if old.servers != new.servers { servers = (old.servers, new.servers) }
        if old.serverHolddown != new.serverHolddown { serverHolddown = (old.serverHolddown, new.serverHolddown) }
        fixed.compare("tproxy_port", old.tproxyPort, new.tproxyPort)
        fixed.compare("fwmark", "0x" + String(old.fwmark, radix: 16), "0x" + String(new.fwmark, radix: 16))
        fixed.compare("table_base", old.tableBase, new.tableBase)
        fixed.compare("fastopen", old.fastOpen ? 1 : 0, new.fastOpen ? 1 : 0)
        fixed.compare("congestion_control", old.congestionControl.rawValue, new.congestionControl.rawValue)
        fixed.compare("status_socket", old.statusSocket, new.statusSocket)
        fixed.compare("metrics_listen", old.metricsListen.map { "\($0)" }, new.metricsListen.map { "\($0)" })
        fixed.compare("keepalive", old.keepalive, new.keepalive)
        self.fixed = fixed.changes

        let oldNames = Set(old.uplinks.map(\.name))
        let newNames = Set(new.uplinks.map(\.name))
        let oldTables = old.uplinkTables
        let newTables = new.uplinkTables
        uplinksRemoved = old.uplinks.filter { !newNames.contains($0.name) }
        uplinksAdded = new.uplinks.filter { !oldNames.contains($0.name) }
        for u in new.uplinks {
            guard let before = old.uplinks.first(where: { $0.name == u.name }) else { continue }
            let change = UplinkChange(old: before, new: u, oldTable: oldTables[u.name]!, newTable: newTables[u.name]!)
            if !change.details.isEmpty { uplinksChanged.append(change) }
        }
        let keptOld = old.uplinks.map(\.name).filter(newNames.contains)
        let keptNew = new.uplinks.map(\.name).filter(oldNames.contains)
        if keptOld != keptNew { uplinkOrder = new.uplinks.map(\.name) }

        lanDevicesAdded = new.lanDevices.filter { !old.lanDevices.contains($0) }
        lanDevicesRemoved = old.lanDevices.filter { !new.lanDevices.contains($0) }
        if old.probeTimers != new.probeTimers { probeTimers = (old.probeTimers, new.probeTimers) }
        if old.maxSubflows != new.maxSubflows { maxSubflows = (old.maxSubflows, new.maxSubflows) }
        if old.holddown != new.holddown { holddown = (old.holddown, new.holddown) }
        if old.quic != new.quic { quic = (old.quic, new.quic) }
        if old.webListen != new.webListen { webListen = (old.webListen, new.webListen) }
        if old.rules != new.rules { rules = (old.rules, new.rules) }
        if old.defaultAction != new.defaultAction { defaultAction = (old.defaultAction, new.defaultAction) }
    }

    public static func == (a: GatewayConfigDiff, b: GatewayConfigDiff) -> Bool {
        a.fixed == b.fixed && a.uplinksAdded == b.uplinksAdded && a.uplinksRemoved == b.uplinksRemoved
            && a.uplinksChanged == b.uplinksChanged && a.uplinkOrder == b.uplinkOrder
            && a.lanDevicesAdded == b.lanDevicesAdded && a.lanDevicesRemoved == b.lanDevicesRemoved
            && a.probeTimers?.old == b.probeTimers?.old && a.probeTimers?.new == b.probeTimers?.new
            && a.maxSubflows?.old == b.maxSubflows?.old && a.maxSubflows?.new == b.maxSubflows?.new
            && a.holddown?.old == b.holddown?.old && a.holddown?.new == b.holddown?.new
            && a.quic?.old == b.quic?.old && a.quic?.new == b.quic?.new
            && a.webListen?.old == b.webListen?.old && a.webListen?.new == b.webListen?.new
            && a.rules?.old == b.rules?.old && a.rules?.new == b.rules?.new
            && a.defaultAction?.old == b.defaultAction?.old && a.defaultAction?.new == b.defaultAction?.new
            && a.servers?.old == b.servers?.old && a.servers?.new == b.servers?.new
            && a.serverHolddown?.old == b.serverHolddown?.old && a.serverHolddown?.new == b.serverHolddown?.new
    }

    /// Nothing to apply (fixed options aside).
    public var isEmpty: Bool { changes.isEmpty }

    /// One phrase per live change, in the order they are applied; "no changes" when there is none.
    public var summary: String { changes.isEmpty ? "no changes" : changes.joined(separator: "; ") }

    private var changes: [String] {
        var out: [String] = []
        for u in uplinksRemoved { out.append("uplink \(u.name) removed (\(u.device))") }
        for c in uplinksChanged { out.append("uplink \(c.name) changed (\(c.details.joined(separator: ", ")))") }
        for u in uplinksAdded { out.append("uplink \(u.name) added (\(u.device), \(u.role))") }
        if let order = uplinkOrder { out.append("uplink order \(order.joined(separator: ", "))") }
        for d in lanDevicesAdded { out.append("lan_device \(d) added") }
        for d in lanDevicesRemoved { out.append("lan_device \(d) removed") }
        if let t = probeTimers { out.append(Self.timerChanges(t.old, t.new)) }
        if let m = maxSubflows { out.append("max_subflows \(m.old) -> \(m.new)") }
        if let h = holddown { out.append("holddown \(ConfigSchema.show(h.old)) -> \(ConfigSchema.show(h.new))") }
        if let q = quic { out.append("quic \(q.old) -> \(q.new)") }
        if let w = webListen { out.append("web_listen \(w.old) -> \(w.new)") }
        if let r = rules { out.append("rules \(r.old.count) -> \(r.new.count)") }
        if let d = defaultAction { out.append("default_action \(d.old) -> \(d.new)") }
        if let s = servers {
            out.append("server \(s.old.map(\.description).joined(separator: ", ")) -> "
                + s.new.map(\.description).joined(separator: ", "))
        }
        if let h = serverHolddown {
            out.append("server_holddown \(ConfigSchema.show(h.old)) -> \(ConfigSchema.show(h.new))")
        }
        return out
    }

    private static func timerChanges(_ a: ProbeTimers, _ b: ProbeTimers) -> String {
        var parts: [String] = []
        if a.interval != b.interval { parts.append("probe_interval \(a.interval) -> \(b.interval)") }
        if a.downAfter != b.downAfter { parts.append("down_after \(a.downAfter) -> \(b.downAfter)") }
        if a.upAfter != b.upAfter { parts.append("up_after \(a.upAfter) -> \(b.upAfter)") }
        return parts.joined(separator: ", ")
    }
}

/// What a reload changes in a running concentrator.
public struct ConcentratorConfigDiff: Equatable, Sendable {
    public var fixed: [FixedOptionChange] = []
    public var denyAdded: [IPPrefix] = []
    public var denyRemoved: [IPPrefix] = []
    /// `allow_dest`, `deny_port` and `allow_port` entries added and removed, as the summary says them.
    public var destinationPolicyChanges: [String] = []
    /// Names of service classes added, removed or with other limits.
    public var classesChanged: [String] = []
    /// Names of subscribers added, removed or changed.
    public var subscribersChanged: [String] = []
    /// `psk_class` set, removed or changed: applies to connections made after the reload.
    public var pskClassChanged = false
    /// Classes whose operator rules (`config rule` with `option class`) changed: pushed to their gateways.
    public var rulesChanged: [String] = []

    public init(from old: ConcentratorConfig, to new: ConcentratorConfig) {
        var fixed = FixedOptions()
        fixed.compare("listen", old.listen, new.listen)
        fixed.compare("port", old.port, new.port)
        fixed.compare("control_port", old.controlPort, new.controlPort)
        fixed.compare("psk_file", old.pskFile, new.pskFile)
        fixed.compare(tls: old.tls, new.tls)
        fixed.compare("session_lifetime", old.sessionLifetime, new.sessionLifetime)
        fixed.compare("handshake_timeout", old.handshakeTimeout, new.handshakeTimeout)
        fixed.compare("congestion_control", old.congestionControl.rawValue, new.congestionControl.rawValue)
        fixed.compare("keepalive", old.keepalive, new.keepalive)
        fixed.compare("max_pending", old.maxPending, new.maxPending)
        fixed.compare("max_pending_per_source", old.maxPendingPerSource, new.maxPendingPerSource)
        fixed.compare("max_control_handshakes", old.maxControlHandshakes, new.maxControlHandshakes)
        fixed.compare(
            "max_control_handshakes_per_source", old.maxControlHandshakesPerSource, new.maxControlHandshakesPerSource)
        fixed.compare("status_socket", old.statusSocket, new.statusSocket)
        fixed.compare("metrics_listen", old.metricsListen.map { "\($0)" }, new.metricsListen.map { "\($0)" })
        fixed.compare("identity", old.identities, new.identities)
        fixed.compare("announce", old.announce, new.announce)
        // The store's connection and its accounting timer are made at start.
        fixed.compare("store", old.store.description, new.store.description)
        fixed.compare("store_password_file", old.storePasswordFile ?? "", new.storePasswordFile ?? "")
        fixed.compare("accounting_interval", old.accountingInterval, new.accountingInterval)
        self.fixed = fixed.changes
        pskClassChanged = old.pskClass != new.pskClass
        denyAdded = new.denyDestinations.filter { !old.denyDestinations.contains($0) }
        denyRemoved = old.denyDestinations.filter { !new.denyDestinations.contains($0) }
        destinationPolicyChanges =
            Self.listChanges("allow_dest", old.allowDestinations, new.allowDestinations)
            + Self.listChanges("deny_port", old.denyPorts, new.denyPorts)
            + Self.listChanges("allow_port", old.allowPorts, new.allowPorts)
        classesChanged = Self.changedNames(old.classes, new.classes, name: \.name)
        subscribersChanged = Self.changedNames(old.subscribers, new.subscribers, name: \.name)
        rulesChanged = OperatorRuleConfig.classesChanged(from: old.rules, to: new.rules)
    }

    /// Whether the destination policy (deny_dest, allow_dest, deny_port, allow_port) changed.
    public var destinationPolicyChanged: Bool {
        !denyAdded.isEmpty || !denyRemoved.isEmpty || !destinationPolicyChanges.isEmpty
    }

    /// "OPTION VALUE added" and "OPTION VALUE removed" for the entries of a list that differ.
    private static func listChanges<T: Equatable>(_ option: String, _ old: [T], _ new: [T]) -> [String] {
        new.filter { !old.contains($0) }.map { "\(option) \($0) added" }
            + old.filter { !new.contains($0) }.map { "\(option) \($0) removed" }
    }

    private static func changedNames<T: Equatable>(_ old: [T], _ new: [T], name: (T) -> String) -> [String] {
        var out: [String] = []
        for o in old where !new.contains(where: { name($0) == name(o) && $0 == o }) { out.append(name(o)) }
        for n in new where !old.contains(where: { name($0) == name(n) }) { out.append(name(n)) }
        return out
    }

    public var isEmpty: Bool { changes.isEmpty }

    public var summary: String { changes.isEmpty ? "no changes" : changes.joined(separator: "; ") }

    private var changes: [String] {
        var out: [String] = []
        for p in denyAdded { out.append("deny_dest \(p) added") }
        for p in denyRemoved { out.append("deny_dest \(p) removed") }
        out += destinationPolicyChanges
        if !classesChanged.isEmpty { out.append("class \(classesChanged.joined(separator: ", ")) changed") }
        if !subscribersChanged.isEmpty {
            out.append("subscriber \(subscribersChanged.joined(separator: ", ")) changed")
        }
        if pskClassChanged { out.append("psk_class changed") }
        if !rulesChanged.isEmpty { out.append("rules of class \(rulesChanged.joined(separator: ", ")) changed") }
        return out
    }
}

/// Collects fixed options whose values differ, in the order they are compared.
private struct FixedOptions {
    var changes: [FixedOptionChange] = []

    mutating func compare<T: Equatable>(_ option: String, _ old: T?, _ new: T?) {
        guard old != new else { return }
        changes.append(
            FixedOptionChange(
                option: option, old: old.map { "\($0)" } ?? "unset", new: new.map { "\($0)" } ?? "unset"))
    }

    /// The control channel's files, read once at start by the TLS context (a gateway has no crl).
    mutating func compare(tls old: TLSFiles?, _ new: TLSFiles?) {
        compare("ca", old?.ca, new?.ca)
        compare("cert", old?.cert, new?.cert)
        compare("key", old?.key, new?.key)
        compare("crl", old?.crl, new?.crl)
    }
}
