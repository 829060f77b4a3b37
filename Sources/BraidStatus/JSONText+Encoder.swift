/// The project's one way to write and read JSON: status documents, the CLI's `--json`, and
/// whatever page or exporter reads them. Foundation's JSONEncoder is not used: the daemon does not
/// link Foundation.
public enum JSONText {
    /// `value` as compact JSON text. Fields come out in the order the type encodes them (its
    /// declaration order for synthesized conformances); an Optional encoded with `encode` (not
    /// `encodeIfPresent`) is written as null.
    public static func encode<T: Encodable>(_ value: T) throws -> String {
        try encodeValue(value).text
    }

    /// `value` as a JSONValue tree.
    public static func encodeValue<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = EncodingNode()
        try value.encode(to: TreeEncoder(node: root, codingPath: []))
        return root.value
    }
}

/// Where one encoded value is being built. A reference, so that nested containers handed out
/// before their parent is finished still write into the parent's tree.
final class EncodingNode {
    enum Content {
        case unset
        case value(JSONValue)
        case array([EncodingNode])
        case object(keys: [String], nodes: [String: EncodingNode])
    }

    var content: Content = .unset

    /// What was written; a value never written (an empty `encode(to:)`) is an empty object, as
    /// Foundation's encoder does.
    var value: JSONValue {
        switch content {
        case .unset: return .object([])
        case .value(let v): return v
        case .array(let nodes): return .array(nodes.map(\.value))
        case .object(let keys, let nodes): return .object(keys.map { JSONMember($0, nodes[$0]!.value) })
        }
    }

    /// The member node for `key`, created in order on first use.
    func member(_ key: String) -> EncodingNode {
        var (keys, nodes): ([String], [String: EncodingNode])
        if case .object(let k, let n) = content { (keys, nodes) = (k, n) } else { (keys, nodes) = ([], [:]) }
        if let existing = nodes[key] {
            existing.content = .unset  // written again: the last value wins
            return existing
        }
        let node = EncodingNode()
        keys.append(key)
        nodes[key] = node
        content = .object(keys: keys, nodes: nodes)
        return node
    }

    func appended() -> EncodingNode {
        var nodes: [EncodingNode] = []
        if case .array(let n) = content { nodes = n }
        let node = EncodingNode()
        nodes.append(node)
        content = .array(nodes)
        return node
    }

    var arrayCount: Int {
        if case .array(let n) = content { return n.count }
        return 0
    }
}

struct TreeEncoder: Encoder {
    let node: EncodingNode
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.content {} else { node.content = .object(keys: [], nodes: [:]) }
        return KeyedEncodingContainer(KeyedTreeContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return UnkeyedTreeContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleTreeContainer(node: node, codingPath: codingPath)
    }
}

/// The primitives every container writes the same way.
enum Primitive {
    static func encode<T: Encodable>(_ value: T, into node: EncodingNode, codingPath: [any CodingKey]) throws {
        switch value {
        case let v as String: node.content = .value(.string(v))
        case let v as Bool: node.content = .value(.bool(v))
        case let v as Double: node.content = .value(.double(v))
        case let v as Float: node.content = .value(.double(Double(v)))
        case let v as Int: node.content = .value(.int(Int64(v)))
        case let v as Int8: node.content = .value(.int(Int64(v)))
        case let v as Int16: node.content = .value(.int(Int64(v)))
        case let v as Int32: node.content = .value(.int(Int64(v)))
        case let v as Int64: node.content = .value(.int(v))
        case let v as UInt: node.content = .value(.uint(UInt64(v)))
        case let v as UInt8: node.content = .value(.uint(UInt64(v)))
        case let v as UInt16: node.content = .value(.uint(UInt64(v)))
        case let v as UInt32: node.content = .value(.uint(UInt64(v)))
        case let v as UInt64: node.content = .value(.uint(v))
        case let v as JSONValue: node.content = .value(v)
        default: try value.encode(to: TreeEncoder(node: node, codingPath: codingPath))
        }
    }
}

struct KeyedTreeContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    var codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.member(key.stringValue).content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try Primitive.encode(value, into: node.member(key.stringValue), codingPath: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        TreeEncoder(node: node.member(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        TreeEncoder(node: node.member(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        TreeEncoder(node: node.member("super"), codingPath: codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        TreeEncoder(node: node.member(key.stringValue), codingPath: codingPath + [key])
    }
}

struct UnkeyedTreeContainer: UnkeyedEncodingContainer {
    let node: EncodingNode
    var codingPath: [any CodingKey]
    var count: Int { node.arrayCount }

    mutating func encodeNil() throws { node.appended().content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try Primitive.encode(value, into: node.appended(), codingPath: codingPath)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
        -> KeyedEncodingContainer<NestedKey>
    {
        TreeEncoder(node: node.appended(), codingPath: codingPath).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        TreeEncoder(node: node.appended(), codingPath: codingPath).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { TreeEncoder(node: node.appended(), codingPath: codingPath) }
}

struct SingleTreeContainer: SingleValueEncodingContainer {
    let node: EncodingNode
    var codingPath: [any CodingKey]

    mutating func encodeNil() throws { node.content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try Primitive.encode(value, into: node, codingPath: codingPath)
    }
}
