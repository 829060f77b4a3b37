import BraidConfig
import BraidCore
import BraidDataPlane
import BraidTLS

/// Reloading the concentrator: a valid configuration's destination policy replaces the running
/// one at once for new connections; relays already running are not looked at again. Options bound
/// into the listener or the key need a restart; a reload that changes one is refused whole.
extension ConcentratorService {
    /// Asks the control thread to reload (SIGHUP). Safe from any thread; the outcome is logged.
    public func reload() {
        guard let reactor = control?.reactors.first else {
            logger.warning("reload requested before the concentrator runs; ignored")
            return
        }
        reactor.execute { [weak self] in _ = self?.reloadNow() }
    }

    /// What the local socket answers: a reload, or the status document for `status`.
    func answer(_ question: String) -> String {
        if question == "reload" { return reloadNow().text }
        return statusText()
    }

    /// Reads the configuration file and applies what changed; runs on the control thread, one
    /// reload at a time.
    func reloadNow() -> ReloadAnswer {
        guard let path = configFile else {
            logger.warning("reload refused: the concentrator was started without a configuration file")
            return .refused(["reload: the concentrator was started without a configuration file"])
        }
        let new: ConcentratorConfig
        let diff: ConcentratorConfigDiff
        do {
            var reader = BraidConfigReader(package: try BraidConfigReader.load(path: path))
            (new, diff) = try reader.concentratorReload(running: config)
        } catch let e as ConfigErrors {
            return refused(path, e.errors.map(\.description))
        } catch {
            return refused(path, ["\(error)"])
        }
        // The CRL is read again at every reload (its path is fixed, its content is not): a bad
        // one refuses the reload, as it would refuse the start.
        var revocations: (RevocationList, TLSContext)?
        if controlServer != nil, let files = new.tls, let crl = files.crl {
            do {
                revocations = (
                    try RevocationList(path: crl, ca: files.ca),
                    try TLSContext(role: .server, ca: files.ca, certificate: files.cert, key: files.key, crl: crl)
                )
            } catch {
                return refused(path, ["\(error)"])
            }
        }
        if diff.destinationPolicyChanged {
            destinationPolicy.current = DestinationPolicy(new)
        }
        // Classes and subscribers: new sessions and control channels see them; a disabled
        // subscriber's keys go at once.
        if let gone = book?.update(new) { controlServer?.revoke(gone) }
        if let (crl, tls) = revocations { controlServer?.revoke(certificatesIn: crl, tls: tls) }
        // Each subscriber's class limits, uplink shares and rules reach the gateways connected now
        // within a round trip, not at their reconnection: one push for all three.
        operatorRules.replace(new, logger: logger)
        controlServer?.pushRules()
        config = new
        logger.notice("configuration reloaded", metadata: ["file": "\(path)", "changes": "\(diff.summary)"])
        return .reloaded(summary: diff.summary)
    }

    private func refused(_ path: String, _ lines: [String]) -> ReloadAnswer {
        logger.error(
            "reload refused; the running configuration stays",
            metadata: ["file": "\(path)", "problems": "\(lines.joined(separator: " | "))"])
        return .refused(lines)
    }
}

/// The destination policy in force, shared by the data reactors (readers, once per connection) and
/// the control thread (the writer, at a reload). The policy is one value swapped under a lock, so a
/// connection is judged wholly by the old policy or wholly by the new one, never by a mix.
final class CurrentDestinationPolicy: @unchecked Sendable {
    private let lock = Mutex()
    private var policy: DestinationPolicy

    init(_ policy: DestinationPolicy) {
        self.policy = policy
    }

    var current: DestinationPolicy {
        get { lock.withLock { policy } }
        set { lock.withLock { policy = newValue } }
    }
}
