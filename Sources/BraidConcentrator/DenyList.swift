import BraidCore

#if canImport(Glibc)
import Glibc
#endif

/// Destinations the concentrator never connects to, so it can never be used to reach its own
/// host, its management plane or a link-local metadata service. Built-in entries come first;
/// the operator's `list deny_dest` adds more.
public struct DenyList: Sendable {
    public static let builtIn: [IPPrefix] = [
        "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fe80::/10", "ff00::/8", "::ffff:0:0/96",
    ].map { IPPrefix($0)! }

    public let configured: [IPPrefix]

    public init(configured: [IPPrefix]) {
        self.configured = configured
    }

    /// The reason `destination` is refused, or nil when it may be reached.
    /// `localAddresses` are the concentrator's own addresses at the time of the check.
    public func refusal(for destination: IPAddress, localAddresses: Set<IPAddress>) -> String? {
        if let p = Self.builtIn.first(where: { $0.contains(destination) }) { return "built-in deny \(p)" }
        if localAddresses.contains(destination) { return "the concentrator's own address" }
        if let p = configured.first(where: { $0.contains(destination) }) { return "deny_dest \(p)" }
        return nil
    }
}
