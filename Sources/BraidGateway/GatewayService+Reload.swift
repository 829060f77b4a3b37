import BraidConfig
import BraidCore
import BraidDataPlane

/// Reloading the gateway: the file is read again, and a valid configuration is applied as a diff
/// against the running one, so no session is dropped. Options bound into the listener, the
/// nftables table or the Convert key need a restart; a reload that changes one is refused whole.
extension GatewayService {
    /// Asks the control reactor to reload (SIGHUP). Safe from any thread; the outcome is logged.
    public func reload() {
        guard let reactor = control?.reactors.first else {
            logger.warning("reload requested before the gateway runs; ignored")
            return
        }
        reactor.execute { [weak self] in _ = self?.reloadNow() }
    }

    /// Reads the configuration file and applies what changed. Runs on the control reactor thread,
    /// where the uplinks' state lives; the answer is what `braid reload` prints.
    func reloadNow() -> ReloadAnswer {
        guard let path = configFile else {
            logger.warning("reload refused: the gateway was started without a configuration file")
            return .refused(["reload: the gateway was started without a configuration file"])
        }
        let new: GatewayConfig
        let diff: GatewayConfigDiff
        do {
            var reader = BraidConfigReader(package: try BraidConfigReader.load(path: path))
            (new, diff) = try reader.gatewayReload(running: config)
        } catch let e as ConfigErrors {
            return refused(e.errors.map(\.description))
        } catch {
            return refused(["\(error)"])
        }
        // The nftables change is one transaction, so when the kernel refuses it nothing has
        // changed yet and the whole reload can still be refused.
        if !diff.lanDevicesAdded.isEmpty || !diff.lanDevicesRemoved.isEmpty {
            do {
                try interception?.setLANDevices(new.lanDevices)
            } catch {
                return refused(["\(path): lan_device: \(error)"])
            }
        }
        // Uplinks added get their NAT rule before traffic can move to them; removed ones keep
        // their mark until their flows are deleted (reconfigure).
        if let egress, diff.quic != nil || !diff.uplinksAdded.isEmpty || !diff.uplinksRemoved.isEmpty
            || diff.uplinksChanged.contains(where: \.deviceChanged)
        {
            do {
                try interception?.setEgress(egressSettings(new, egress))
            } catch {
                return refused(["\(path): \(error)"])
            }
        }
        // The new setting is read from `new`, not through the diff's optional tuple: Swift 6.3.1's
        // optimizer crashes (CopyPropagation, an ownership error) compiling a switch on an enum
        // borrowed out of `diff.webListen` in a release build.
        if diff.webListen != nil {
            let ports: [UInt16] = new.webListen.port.map { [$0] } ?? []
            do {
                try interception?.setLANOnlyPorts(ports)
            } catch {
                return refused(["\(path): web_listen: \(error)"])
            }
        }
        // Rules after the uplinks' marks (a rule may name an uplink this reload adds). Connections
        // already running keep their path (see Interception.setSteering).
        if let egress, diff.rules != nil || diff.defaultAction != nil || !diff.uplinksAdded.isEmpty {
            do {
                try interception?.setSteering(steeringSettings(new, egress))
            } catch {
                return refused(["\(path): rule: \(error)"])
            }
        }
        supervisor?.reconfigure(to: new, diff)
        reconfigureServers(new)
        config = new
        if diff.webListen != nil || !diff.lanDevicesAdded.isEmpty || !diff.lanDevicesRemoved.isEmpty {
            placeStatusPage()
        }
        // A name's records may have changed since the last look, and new names need a first one.
        resolveNow()
        logger.notice("configuration reloaded", metadata: ["file": "\(path)", "changes": "\(diff.summary)"])
        return .reloaded(summary: diff.summary)
    }

    private func refused(_ lines: [String]) -> ReloadAnswer {
        logger.error(
            "reload refused; the running configuration stays",
            metadata: ["file": "\(configFile ?? "")", "problems": "\(lines.joined(separator: " | "))"])
        return .refused(lines)
    }
}
