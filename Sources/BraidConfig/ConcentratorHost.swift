import BraidCore

/// `option server`: the concentrator by address, or by a host name whose A and AAAA records the
/// gateway resolves at start, at each reload and periodically (one address per family is used).
public enum ConcentratorHost: Hashable, Sendable, CustomStringConvertible {
    case address(IPAddress)
    case name(String)

    /// An address literal is an address; anything else that `ConfigSchema.parse(_:as: .hostOrAddress)`
    /// accepts is a name.
    public init(_ text: String) {
        self = IPAddress(text).map { .address($0) } ?? .name(text)
    }

    public var description: String {
        switch self {
        case .address(let a): a.description
        case .name(let n): n
        }
    }

    /// The address when configured as one.
    public var address: IPAddress? {
        if case .address(let a) = self { return a }
        return nil
    }
}
