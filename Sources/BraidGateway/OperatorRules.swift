import BraidConfig
import BraidCore
import BraidDataPlane
import BraidWire

#if canImport(Glibc)
    import Glibc
#endif

/// The rules the operator pushes for the gateway's class, as the gateway evaluates them: after its
/// own rules (a gateway rule for the same traffic wins) and before its `default_action`, in the
/// concentrator's order. Policy without I/O: Interception applies the statements.
enum OperatorRules {
    /// A pushed rule as a gateway rule: the same matches and action, no uplink (a direct one
    /// leaves by the best healthy uplink).
    static func trafficRule(_ rule: ControlMessage.OperatorRule) -> TrafficRule {
        let action: RuleAction =
            switch rule.action {
            case .bond: .bond
            case .direct: .direct
            case .block: .block
            }
        let proto: RuleProtocol =
            switch rule.proto {
            case .tcp: .tcp
            case .udp: .udp
            case .any: .any
            }
        return TrafficRule(
            name: rule.name, destinations: rule.destinations, destinationPorts: rule.destinationPorts,
            sources: rule.sources, sourceMACs: rule.sourceMACs, proto: proto, action: action)
    }

    /// The statements of the operator's chain for `rules`.
    static func statements(_ rules: [ControlMessage.OperatorRule]) -> [Interception.RuleStatement] {
        rules.flatMap { TrafficRules.statements(trafficRule($0), marks: { _ in nil }) }
    }
}

/// Where the gateway keeps the last set of operator rules it received: a restart applies them
/// before the control channel is up again, and a channel that is down leaves them in force. The
/// file holds the `operatorRules` frame as it arrived and is read back through the same bounded
/// decoder, so a damaged file is refused like a damaged frame; it lives next to the status socket
/// (`/run/braid/gateway.operator-rules` by default: kept across restarts, not across a reboot,
/// after which the concentrator pushes them again as soon as the channel is up).
struct OperatorRulesFile {
    let path: String

    init(statusSocket: String) {
        let directory = KernelStateFile.directory(of: statusSocket)
        path = (directory.isEmpty ? "." : directory) + "/gateway.operator-rules"
    }

    /// The rules kept, nil when there is no file; throws when the file cannot be read or decoded.
    func load() throws -> [ControlMessage.OperatorRule]? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw SystemError("open \(path)", errno: errno)
        }
        defer { close(fd) }
        let limit = ControlMessage.headerSize + OperatorRuleLimits.maximumPayloadSize
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read \(path)", errno: errno)
            }
            if n == 0 { break }
            bytes += buffer[0..<n]
            guard bytes.count <= limit else { throw GatewayError("\(path): over \(limit) bytes") }
        }
        guard case .operatorRules(let rules) = try ControlMessage.decode(frame: bytes) else {
            throw GatewayError("\(path): not an operatorRules frame")
        }
        return rules
    }

    /// Replaces the file with `rules`: a new file renamed over the old, so a crash leaves either.
    func save(_ rules: [ControlMessage.OperatorRule]) throws {
        let bytes = try ControlMessage.operatorRules(rules).encode()
        let temporary = path + ".new"
        unlink(temporary)
        let fd = try syscall("open(\(temporary))") {
            open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0 else {
            unlink(temporary)
            throw SystemError("write \(temporary)", errno: errno == 0 ? EIO : errno)
        }
        try syscall("rename(\(temporary), \(path))") { rename(temporary, path) }
    }
}
