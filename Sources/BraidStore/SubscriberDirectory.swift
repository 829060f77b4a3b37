import BraidConfig

/// Every class and subscriber a concentrator enforces, as one value: what a store hands a running
/// concentrator, whole, at start and after each change.
public struct SubscriberDirectory: Equatable, Sendable {
    public var classes: [ServiceClass]
    public var subscribers: [Subscriber]

    public init(classes: [ServiceClass] = [], subscribers: [Subscriber] = []) {
        self.classes = classes
        self.subscribers = subscribers
    }
}

/// One change an operator makes with `braid subscriber` or `braid subscriber class`, the same for
/// every store. `nil` fields of a `set` are left as they are.
public enum SubscriberChange: Equatable, Sendable {
    case addSubscriber(Subscriber)
    case setSubscriber(name: String, serviceClass: String?, enabled: Bool?)
    case removeSubscriber(String)
    case addClass(ServiceClass)
    case setClass(name: String, rateDown: UInt64?, rateUp: UInt64?, maxSessions: UInt32?)
    case removeClass(String)
}

/// Why a change cannot be made; the message names the subscriber or class and the problem.
public struct StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension SubscriberDirectory {
    /// Subscriber names are certificate common names and uci section names: letters, digits and
    /// '_', at most 64 bytes (the schema's rule for `config subscriber`).
    public static func checkSubscriberName(_ name: String) throws(StoreError) {
        try checkName(name, kind: "subscriber", maxBytes: 64)
    }

    /// Class names are sent to gateways in one length byte: at most 255 bytes.
    public static func checkClassName(_ name: String) throws(StoreError) {
        try checkName(name, kind: "class", maxBytes: 255)
    }

    private static func checkName(_ name: String, kind: String, maxBytes: Int) throws(StoreError) {
        let ok =
            !name.isEmpty && name.utf8.count <= maxBytes
            && name.utf8.allSatisfy { ConfigSchema.isAlphanumeric($0) || $0 == UInt8(ascii: "_") }
        guard ok else {
            throw StoreError("\(kind) name '\(name.prefix(80))': letters, digits and '_' only, 1 to \(maxBytes) bytes")
        }
    }

    /// The directory after `change`, or why the change is refused: the same rules for every store,
    /// so the uci file and the database refuse the same things with the same words.
    public func applying(_ change: SubscriberChange) throws(StoreError) -> SubscriberDirectory {
        var d = self
        func subscriberIndex(_ name: String) throws(StoreError) -> Int {
            guard let i = d.subscribers.firstIndex(where: { $0.name == name }) else {
                throw StoreError("no subscriber '\(name)'")
            }
            return i
        }
        func classIndex(_ name: String) throws(StoreError) -> Int {
            guard let i = d.classes.firstIndex(where: { $0.name == name }) else { throw StoreError("no class '\(name)'") }
            return i
        }
        switch change {
        case .addSubscriber(let s):
            try Self.checkSubscriberName(s.name)
            guard !d.subscribers.contains(where: { $0.name == s.name }) else {
                throw StoreError("subscriber '\(s.name)' exists already (use set)")
            }
            _ = try classIndex(s.serviceClass)
            d.subscribers.append(s)
        case .setSubscriber(let name, let serviceClass, let enabled):
            let i = try subscriberIndex(name)
            if let serviceClass {
                _ = try classIndex(serviceClass)
                d.subscribers[i].serviceClass = serviceClass
            }
            if let enabled { d.subscribers[i].enabled = enabled }
        case .removeSubscriber(let name):
            d.subscribers.remove(at: try subscriberIndex(name))
        case .addClass(let c):
            try Self.checkClassName(c.name)
            guard !d.classes.contains(where: { $0.name == c.name }) else {
                throw StoreError("class '\(c.name)' exists already (use set)")
            }
            d.classes.append(c)
        case .setClass(let name, let rateDown, let rateUp, let maxSessions):
            let i = try classIndex(name)
            if let rateDown { d.classes[i].rateDown = rateDown }
            if let rateUp { d.classes[i].rateUp = rateUp }
            if let maxSessions { d.classes[i].maxSessions = maxSessions }
        case .removeClass(let name):
            let i = try classIndex(name)
            let users = d.subscribers.filter { $0.serviceClass == name }.map(\.name)
            guard users.isEmpty else {
                throw StoreError(
                    "class '\(name)' is used by \(users.count) subscriber(s), e.g. \(users.prefix(3).joined(separator: ", "))")
            }
            d.classes.remove(at: i)
        }
        return d
    }
}

/// Where subscribers are managed from the command line: the uci file or PostgreSQL.
public protocol SubscriberStore {
    /// Everything in the store now.
    func directory() async throws -> SubscriberDirectory
    /// Makes one change; throws `StoreError` when the change is refused, naming why.
    func apply(_ change: SubscriberChange) async throws
}
