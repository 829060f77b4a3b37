import BraidConfig

/// The uci store: the `class` and `subscriber` sections of the configuration file. A change is
/// made as `braid uci set …; braid uci commit` would make it, on a copy in memory (so staged
/// changes an operator has in `/tmp/.uci` are neither committed nor disturbed), checked as
/// `braid check` would, and only then written over the file atomically. A running concentrator
/// takes it at its next reload (`braid subscriber` asks for one).
public struct UCISubscriberStore: SubscriberStore {
    public let path: String
    let files: any UCIFileSystem

    public init(path: String, files: any UCIFileSystem = UCILocalFiles()) {
        self.path = path
        self.files = files
    }

    public func directory() throws -> SubscriberDirectory {
        let config = try readConcentrator(try text())
        return SubscriberDirectory(classes: config.classes, subscribers: config.subscribers)
    }

    public func apply(_ change: SubscriberChange) throws {
        let before = try text()
        let config = try readConcentrator(before)
        _ = try SubscriberDirectory(classes: config.classes, subscribers: config.subscribers).applying(change)
        let package = try UCIParser.parse(before, file: path)
        let (name, type) = change.section
        if let other = package.sections.first(where: { $0.name == name && $0.type != type }) {
            throw StoreError("a `config \(other.type)` section is named '\(name)' already (line \(other.line))")
        }
        let memory = MemoryUCIFiles(["/braid/conf/braid": before])
        for command in change.uciCommands + [["commit", "braid"]] {
            let result = UCICommandLine.run(command, files: memory, confDir: "/braid/conf", saveDir: "/braid/save")
            guard result.status == 0 else {
                throw StoreError("uci \(command.joined(separator: " ")): \(result.errors)")
            }
        }
        guard let after = memory.files["/braid/conf/braid"] else { throw StoreError("uci commit wrote nothing") }
        _ = try readConcentrator(after)
        try files.replaceAtomically(path, after)
    }

    private func text() throws -> String {
        guard let t = try files.read(path) else { throw StoreError("cannot read \(path)") }
        return t
    }

    private func readConcentrator(_ text: String) throws -> ConcentratorConfig {
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: path))
        do {
            let config = try reader.concentrator()
            guard config.store == .uci else {
                throw StoreError("\(path) names store \(config.store): its subscribers are not in the file")
            }
            return config
        } catch let e as ConfigErrors {
            throw StoreError("\(path) does not pass `braid check`:\n\(e)")
        }
    }
}

extension SubscriberChange {
    /// The uci section the change is about: its name and type.
    var section: (name: String, type: String) {
        switch self {
        case .addSubscriber(let s): (s.name, "subscriber")
        case .setSubscriber(let name, _, _), .removeSubscriber(let name): (name, "subscriber")
        case .addClass(let c): (c.name, "class")
        case .setClass(let name, _, _, _), .removeClass(let name): (name, "class")
        }
    }

    /// The `braid uci` command lines that make the change in package `braid`.
    var uciCommands: [[String]] {
        func set(_ name: String, _ option: String, _ value: String) -> [String] {
            ["set", "braid.\(name).\(option)=\(value)"]
        }
        switch self {
        case .addSubscriber(let s):
            return [
                ["set", "braid.\(s.name)=subscriber"], set(s.name, "class", s.serviceClass),
                set(s.name, "enabled", s.enabled ? "1" : "0"),
            ]
        case .setSubscriber(let name, let serviceClass, let enabled):
            return (serviceClass.map { [set(name, "class", $0)] } ?? [])
                + (enabled.map { [set(name, "enabled", $0 ? "1" : "0")] } ?? [])
        case .removeSubscriber(let name), .removeClass(let name):
            return [["delete", "braid.\(name)"]]
        case .addClass(let c):
            return [
                ["set", "braid.\(c.name)=class"], set(c.name, "rate_down", "\(c.rateDown)"),
                set(c.name, "rate_up", "\(c.rateUp)"), set(c.name, "max_sessions", "\(c.maxSessions)"),
            ]
        case .setClass(let name, let rateDown, let rateUp, let maxSessions):
            return (rateDown.map { [set(name, "rate_down", "\($0)")] } ?? [])
                + (rateUp.map { [set(name, "rate_up", "\($0)")] } ?? [])
                + (maxSessions.map { [set(name, "max_sessions", "\($0)")] } ?? [])
        }
    }
}

/// Files in memory, for running uci commands on a copy of the configuration.
final class MemoryUCIFiles: UCIFileSystem {
    var files: [String: String]

    init(_ files: [String: String]) {
        self.files = files
    }

    func read(_ path: String) throws -> String? { files[path] }

    func list(_ directory: String) -> [String]? {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        return files.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    func append(_ path: String, _ text: String) throws { files[path, default: ""] += text }
    func replace(_ path: String, _ text: String) throws { files[path] = text }
    func replaceAtomically(_ path: String, _ text: String) throws { files[path] = text }
    func readInput(_ path: String?) throws -> String { "" }
    func checkPrivateDirectory(_ path: String) throws {}
}
