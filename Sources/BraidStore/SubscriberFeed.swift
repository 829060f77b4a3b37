/// What a running concentrator gets from a shared store: the whole directory at start and after
/// every change, and somewhere to leave each accounting period's usage. The uci store needs none
/// (the file is read at start and reload); the PostgreSQL one implements it.
public protocol SubscriberFeed: AnyObject, Sendable {
    /// Reads the directory once (throws when it cannot, naming why), then watches the store:
    /// `update` is called with the whole directory after each change, on a thread of the feed's.
    /// Every `interval` seconds `usage` is asked for the bytes moved since it was last asked, and
    /// the feed writes them, keeping them while the store is away.
    func start(
        interval: UInt32, update: @escaping @Sendable (SubscriberDirectory) -> Void,
        usage: @escaping @Sendable () -> [String: Traffic]
    ) throws -> SubscriberDirectory
    /// Writes what is left (one last period), within a few seconds, then closes the connections.
    func stop()
}
