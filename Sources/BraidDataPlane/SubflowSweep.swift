/// Checks, every `keepalive`, that the concentrator's relays still have a live subflow from their
/// gateway (`SpliceRelay.checkSubflows`): one timer per reactor for all of them. A timer per
/// connection, never cancelled, would keep `keepalive` seconds' worth of connections queued, some
/// hundreds of thousands at a few thousand connections a second.
final class SubflowSweep {
    private struct Entry {
        weak var relay: SpliceRelay?
    }

    private let reactor: Reactor
    private let period: UInt64
    /// Touched on the reactor thread only.
    private var relays: [Entry] = []

    init(reactor: Reactor, period: UInt64) {
        self.reactor = reactor
        self.period = period
        reactor.execute { [weak self] in self?.schedule() }
    }

    /// Watches `relay` from the next sweep on. Reactor thread.
    func add(_ relay: SpliceRelay) {
        relays.append(Entry(relay: relay))
    }

    private func schedule() {
        reactor.schedule(afterNanos: period) { [weak self] in self?.sweep() }
    }

    /// Checks every relay still open and forgets the ended ones.
    private func sweep() {
        let period = self.period
        relays.removeAll { entry in !(entry.relay?.checkSubflows(period: period) ?? false) }
        schedule()
    }
}
