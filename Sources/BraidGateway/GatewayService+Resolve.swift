import BraidConfig
import BraidCore
import BraidDataPlane

#if canImport(Glibc)
import Glibc
#endif

/// `server` as a host name: its A and AAAA records are the concentrator's addresses, one
/// per family (each entry of `list server` on its own). Resolved at start (a name that does not
/// resolve stops the start; with several, none resolving does), at each reload
/// and every `resolveIntervalNanos`; a later failure keeps the addresses the gateway has, so a
/// DNS outage never takes the concentrator away from running sessions.
extension GatewayService {
    static let resolveIntervalNanos: UInt64 = 300_000_000_000

    /// The configured concentrator's addresses, in the resolver's order.
    static func resolveServer(_ server: ConcentratorHost) throws -> [IPAddress] {
        switch server {
        case .address(let a):
            return [a]
        case .name(let name):
            do {
                return try HostResolver.resolve(name)
            } catch {
                throw GatewayError("server: \(error)")
            }
        }
    }

    /// Re-resolves the configured names every `resolveIntervalNanos` (an address needs nothing).
    func scheduleResolve() {
        guard let reactor = control?.reactors.first else { return }
        reactor.schedule(afterNanos: Self.resolveIntervalNanos) { [weak self] in
            guard let self, self.supervisor != nil else { return }
            self.resolveNow()
            self.scheduleResolve()
        }
    }

    /// Resolves each configured name on a thread of its own (the resolver may wait seconds for
    /// DNS, which would stall the probes on the control reactor), then hands the result to the
    /// control reactor.
    func resolveNow() {
        guard let reactor = control?.reactors.first else { return }
        let logger = self.logger
        for case .name(let name) in config.servers {
            runDetached { [weak self] in
                let result = Result { () throws(ResolveError) -> [IPAddress] in try HostResolver.resolve(name) }
                reactor.execute { [weak self] in
                    guard let self, self.supervisor != nil else { return }
                    switch result {
                    case .success(let addresses):
                        self.resolvedServer(.name(name), addresses)
                    case .failure(let error):
                        let known = self.choice?.servers.first { $0.host == .name(name) }?.addresses.all ?? []
                        logger.warning(
                            "server: \(error); keeping the concentrator addresses known",
                            metadata: ["concentrator": "\(name)", "addresses": "\(known)"])
                    }
                }
            }
        }
    }
}

/// Runs `body` on a new detached thread.
func runDetached(_ body: @escaping () -> Void) {
    final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    defer { pthread_attr_destroy(&attributes) }
    let rc = pthread_create(&thread, &attributes, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
        return nil
    }, box)
    if rc != 0 {
        // No thread: run it here rather than lose it.
        Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body()
    }
}
