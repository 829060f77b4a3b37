import BraidCore

/// The daemon that reads a section.
public enum ConfigRole: String, Sendable, CaseIterable, CustomStringConvertible {
    case gateway, concentrator

    public var description: String { rawValue }
}

/// What an option's text must look like, and what it becomes once read.
public enum ValueType: Sendable, Equatable {
    /// TCP or UDP port, 1-65535.
    case port
    /// IPv4 or IPv6 address.
    case address
    /// Address or CIDR prefix; a bare address is a host prefix. `::ffff:a.b.c.d/n` reads as IPv4.
    case prefix
    /// A port or an inclusive range of ports: `25`, `8000-8080`.
    case portRange
    /// Decimal whole number in a range.
    case uint(ClosedRange<UInt64>)
    /// Decimal whole number of milliseconds in a range.
    case milliseconds(ClosedRange<UInt64>)
    /// Seconds in a range; `whole` refuses fractions.
    case seconds(ClosedRange<Double>, whole: Bool)
    /// uci's booleans: 1/0, on/off, true/false, yes/no, enabled/disabled.
    case boolean
    /// One word out of a fixed set.
    case choice([String])
    /// Absolute file system path, optionally limited in bytes (a Unix socket path is at most 107).
    case path(maxBytes: Int?)
    /// Network interface name as the kernel accepts it.
    case device
    /// Bits per second, a whole number with an optional 1000-based suffix k, M or G; 0 is unlimited.
    case rate
    /// 32-bit packet mark, decimal or `0x` hexadecimal.
    case mark
    /// DNS name or address text, as a certificate names its holder.
    case hostName
    /// An IP address, or a DNS name to resolve (its last label not all digits, so a mistyped
    /// address such as `198.18.10` is refused rather than looked up).
    case hostOrAddress
    /// The name of a section of the given type.
    case reference(String)
    /// `uci` or a `postgresql://` URL (`StoreLocation`); errors never repeat its password.
    case store
    /// Where a LAN page listens: `off`, `lan`, `lan:PORT`, `ADDRESS[:PORT]` or `[IPv6]:PORT`
    /// (see `ListenerSetting`); a bare address or `lan` gets the default port.
    case listener(defaultPort: UInt16)
    /// An address and a TCP port: `198.18.0.1:9100`, `[2001:db8::1]:9100`.
    case endpoint
    /// Ethernet address, six hexadecimal octets separated by ':' or '-'.
    case macAddress
    /// `UPLINK=N`: a gateway uplink's section name and 0 to 100 percent (`UplinkShare`).
    case uplinkShare
    /// Bytes, a whole number with an optional 1000-based suffix k, M, G or T (as carriers sell
    /// data volumes, and as `rate` reads its suffixes).
    case bytes
}

/// A value after its text was checked against its `ValueType`.
public enum ConfigValue: Sendable, Equatable {
    case number(UInt64)
    case seconds(Double)
    case flag(Bool)
    case text(String)
    case address(IPAddress)
    case prefix(IPPrefix)
    case portRange(PortRange)
    case endpoint(Endpoint)
    case macAddress(MACAddress)
}

/// One option of a section: its name, shape, type, default and a one-line description.
public struct OptionSchema: Sendable {
    public enum Kind: String, Sendable {
        /// `option NAME 'VALUE'`: one value.
        case option
        /// `list NAME 'VALUE'`, repeated: any number of values. A single `option` is accepted too.
        case list
    }

    public var name: String
    public var kind: Kind
    public var type: ValueType
    /// The default in the file's own spelling; nil when the option has none.
    public var defaultValue: String?
    /// Describes a default that depends on other options (rendered in place of `defaultValue`).
    public var defaultNote: String?
    public var required: Bool
    /// A practical value for the rendered default package when there is no default, or a better one.
    public var example: String?
    public var doc: String

    /// An `option`.
    public init(
        _ name: String, _ type: ValueType, default defaultValue: String? = nil, defaultNote: String? = nil,
        required: Bool = false, example: String? = nil, doc: String
    ) {
        self.init(
            name, .option, type, default: defaultValue, defaultNote: defaultNote, required: required, example: example,
            doc: doc)
    }

    public init(
        _ name: String, _ kind: Kind, _ type: ValueType, default defaultValue: String? = nil,
        defaultNote: String? = nil, required: Bool = false, example: String? = nil, doc: String
    ) {
        self.name = name
        self.kind = kind
        self.type = type
        self.defaultValue = defaultValue
        self.defaultNote = defaultNote
        self.required = required
        self.example = example
        self.doc = doc
    }
}

/// One section type: which role reads it, how many there may be, and its options.
public struct SectionSchema: Sendable {
    public enum Count: Sendable {
        /// Exactly one section of this type.
        case one
        /// Any number, each with its own name.
        case many
    }

    public var type: String
    public var role: ConfigRole
    public var count: Count
    /// The section must be named (`config TYPE 'NAME'`), because something refers to it by name.
    public var named: Bool
    /// Longest name in bytes, when the name goes somewhere with a limit of its own (a wire field,
    /// a certificate's common name); nil when only uci's rules apply.
    public var maxNameBytes: Int?
    public var doc: String
    public var options: [OptionSchema]
    /// Options this section type refuses although the other role's section of the same type takes
    /// them, with the reason `braid check` gives instead of "unknown option".
    public var refusedOptions: [String: String] = [:]

    public init(
        _ type: String, role: ConfigRole, count: Count, named: Bool = false, maxNameBytes: Int? = nil, doc: String,
        options: [OptionSchema]
    ) {
        self.type = type
        self.role = role
        self.count = count
        self.named = named
        self.maxNameBytes = maxNameBytes
        self.doc = doc
        self.options = options
    }

    public func option(_ name: String) -> OptionSchema? {
        options.first { $0.name == name }
    }
}

/// The whole configuration language of one package: every section type it may hold.
public struct ConfigSchema: Sendable {
    public var sections: [SectionSchema]

    public init(sections: [SectionSchema]) {
        self.sections = sections
    }

    public func section(_ type: String) -> SectionSchema? {
        sections.first { $0.type == type }
    }

    /// The section type as `role` reads it: a type both roles read (`rule`) has a schema for each.
    public func section(_ type: String, role: ConfigRole) -> SectionSchema? {
        sections.first { $0.type == type && $0.role == role } ?? section(type)
    }

    /// Section types read by a role, in schema order.
    public func sections(for role: ConfigRole) -> [SectionSchema] {
        sections.filter { $0.role == role }
    }
}

/// A section whose options were checked against the schema: defaults filled in, bad values left out.
public struct ValidatedSection: Sendable {
    public let schema: SectionSchema
    public let section: UCISection
    /// Options that were set and valid, or have a default; invalid ones are absent.
    public private(set) var values: [String: [ConfigValue]] = [:]

    init(schema: SectionSchema, section: UCISection) {
        self.schema = schema
        self.section = section
    }

    public var label: String { section.label }

    /// The line of an option when set, else of the section: where an error about it points.
    public func line(_ option: String) -> Int {
        section.option(option)?.line ?? section.line
    }

    /// Whether the option was written in the file (as opposed to defaulted).
    public func isSet(_ option: String) -> Bool {
        section.option(option) != nil
    }

    func known(_ name: String) -> OptionSchema {
        guard let o = schema.option(name) else {
            preconditionFailure("option \(name) is not in the schema of 'config \(schema.type)'")
        }
        return o
    }

    /// The value of an option; nil when unset without default or invalid.
    public func value(_ name: String) -> ConfigValue? {
        _ = known(name)
        return values[name]?.last
    }

    public func list(_ name: String) -> [ConfigValue] {
        _ = known(name)
        return values[name] ?? []
    }

    public func number(_ name: String) -> UInt64? {
        if case .number(let n)? = value(name) { return n }
        return nil
    }

    public func seconds(_ name: String) -> Double? {
        if case .seconds(let s)? = value(name) { return s }
        return nil
    }

    public func flag(_ name: String) -> Bool? {
        if case .flag(let b)? = value(name) { return b }
        return nil
    }

    public func text(_ name: String) -> String? {
        if case .text(let t)? = value(name) { return t }
        return nil
    }

    public func address(_ name: String) -> IPAddress? {
        if case .address(let a)? = value(name) { return a }
        return nil
    }

    public func endpoint(_ name: String) -> Endpoint? {
        if case .endpoint(let e)? = value(name) { return e }
        return nil
    }

    public func addresses(_ name: String) -> [IPAddress] {
        list(name).compactMap { if case .address(let a) = $0 { a } else { nil } }
    }

    public func texts(_ name: String) -> [String] {
        list(name).compactMap { if case .text(let t) = $0 { t } else { nil } }
    }

    public func prefixes(_ name: String) -> [IPPrefix] {
        list(name).compactMap { if case .prefix(let p) = $0 { p } else { nil } }
    }

    public func portRanges(_ name: String) -> [PortRange] {
        list(name).compactMap { if case .portRange(let r) = $0 { r } else { nil } }
    }

    public func macAddresses(_ name: String) -> [MACAddress] {
        list(name).compactMap { if case .macAddress(let m) = $0 { m } else { nil } }
    }

    mutating func set(_ name: String, _ v: [ConfigValue]) {
        values[name] = v
    }
}

extension ConfigError {
    /// An error about a section or one of its options: `FILE:LINE: section.option: message (value)`.
    public init(
        file: String, line: Int, section: String, option: String? = nil, _ message: String, value: String? = nil
    ) {
        let place = option.map { "\(section).\($0)" } ?? section
        let shown = value.map { " (\($0))" } ?? ""
        self.init(file: file, line: line, "\(place): \(message)\(shown)")
    }
}

/// The result of checking a package for one role: the sections it reads and every problem found.
public struct ValidatedPackage: Sendable {
    public var file: String
    public var role: ConfigRole
    public var sections: [ValidatedSection]
    public var errors: [ConfigError]

    public func sections(ofType type: String) -> [ValidatedSection] {
        sections.filter { $0.schema.type == type }
    }

    mutating func error(_ s: ValidatedSection, _ option: String?, _ message: String, value: String? = nil) {
        let line = option.map { s.line($0) } ?? s.section.line
        errors.append(ConfigError(file: file, line: line, section: s.label, option: option, message, value: value))
    }
}

extension ConfigSchema {
    /// Checks every section a role reads: section types, names and counts, options and their values,
    /// references between sections. Sections of the other role are left alone; unknown types are errors.
    public func validate(_ package: UCIPackage, role: ConfigRole) -> ValidatedPackage {
        var result = ValidatedPackage(file: package.file, role: role, sections: [], errors: [])
        for section in package.sections {
            guard let schema = self.section(section.type, role: role) else {
                result.errors.append(
                    ConfigError(
                        file: package.file, line: section.line, section: section.label, "unknown section type",
                        value: section.type))
                continue
            }
            guard schema.role == role else { continue }
            var validated = ValidatedSection(schema: schema, section: section)
            if schema.count == .one, result.sections.contains(where: { $0.schema.type == schema.type }) {
                result.errors.append(
                    ConfigError(
                        file: package.file, line: section.line, section: section.label,
                        "more than one 'config \(schema.type)' section"))
            }
            if schema.named && section.name == nil {
                result.errors.append(
                    ConfigError(
                        file: package.file, line: section.line, section: section.label,
                        "'config \(schema.type)' needs a name, as in config \(schema.type) 'NAME'"))
            }
            if let limit = schema.maxNameBytes, let name = section.name, name.utf8.count > limit {
                result.errors.append(
                    ConfigError(
                        file: package.file, line: section.line, section: section.label,
                        "name of \(name.utf8.count) bytes, at most \(limit)", value: name))
            }
            for option in section.options where schema.option(option.name) == nil {
                result.errors.append(
                    ConfigError(
                        file: package.file, line: option.line, section: section.label, option: option.name,
                        schema.refusedOptions[option.name] ?? "unknown option",
                        value: option.values.joined(separator: " ")))
            }
            for option in schema.options {
                check(option, in: &validated, errors: &result.errors, file: package.file)
            }
            result.sections.append(validated)
        }
        for schema in sections(for: role) {
            let found = result.sections(ofType: schema.type)
            switch schema.count {
            case .one:
                if found.isEmpty {
                    result.errors.append(ConfigError(file: package.file, line: 0, "no 'config \(schema.type)' section"))
                }
            case .many:
                // Two sections of one name are one section to uci (the second adds to the first),
                // and the parser merges them the same way: nothing to check here.
                break
            }
        }
        checkReferences(&result)
        result.errors = result.errors.enumerated().sorted {
            ($0.element.line, $0.offset) < ($1.element.line, $1.offset)
        }
        .map(\.element)
        return result
    }

    private func check(_ option: OptionSchema, in s: inout ValidatedSection, errors: inout [ConfigError], file: String)
    {
        guard let written = s.section.option(option.name) else {
            if option.required {
                errors.append(
                    ConfigError(
                        file: file, line: s.section.line, section: s.label, option: option.name,
                        option.kind == .list ? "required list is not set" : "required option is not set"))
            } else if let d = option.defaultValue {
                // A unit test parses every default; one that does not is a bug in the schema, not in the file.
                do {
                    s.set(option.name, [try Self.parse(d, as: option.type)])
                } catch {
                    preconditionFailure("default of \(s.schema.type).\(option.name) (\(d)): \(error.message)")
                }
            }
            return
        }
        if written.isList && option.kind == .option {
            errors.append(
                ConfigError(
                    file: file, line: written.line, section: s.label, option: option.name,
                    "must be an option, not a list", value: written.values.joined(separator: " ")))
            return
        }
        var parsed: [ConfigValue] = []
        var valid = true
        for text in written.values {
            do {
                parsed.append(try Self.parse(text, as: option.type))
            } catch {
                valid = false
                errors.append(
                    ConfigError(
                        file: file, line: written.line, section: s.label, option: option.name, error.message,
                        value: option.type == .store ? StoreLocation.redacted(text) : text))
            }
        }
        if valid { s.set(option.name, parsed) }
    }

    private func checkReferences(_ result: inout ValidatedPackage) {
        for index in result.sections.indices {
            let s = result.sections[index]
            for option in s.schema.options {
                guard case .reference(let type) = option.type else { continue }
                for name in s.texts(option.name)
                where !result.sections(ofType: type).contains(where: { $0.section.name == name }) {
                    result.error(s, option.name, "no 'config \(type)' section has this name", value: name)
                }
            }
        }
    }

    /// Why a value's text does not fit its type; the caller adds where it was and the text itself.
    public struct ValueError: Error {
        public var message: String
    }

    /// Reads one value's text as a type; the error's message says what the text should have been.
    public static func parse(_ text: String, as type: ValueType) throws(ValueError) -> ConfigValue {
        func bad(_ m: String) -> ValueError { ValueError(message: m) }
        switch type {
        case .port:
            guard let n = UInt16(text), n > 0 else { throw bad("must be a port number 1-65535") }
            return .number(UInt64(n))
        case .address:
            guard let a = IPAddress(text) else { throw bad("not an IP address") }
            return .address(a)
        case .prefix:
            guard let p = IPPrefix(text) else { throw bad("not an address or CIDR prefix") }
            return .prefix(p.unmappingIPv4)
        case .portRange:
            guard let r = PortRange(text) else {
                throw bad("must be a port 1-65535 or a range LOW-HIGH of them with LOW <= HIGH")
            }
            return .portRange(r)
        case .uint(let range):
            guard let n = decimal(text), range.contains(n) else {
                throw bad("must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return .number(n)
        case .milliseconds(let range):
            guard let n = decimal(text), range.contains(n) else {
                throw bad("must be milliseconds from \(range.lowerBound) to \(range.upperBound)")
            }
            return .number(n)
        case .seconds(let range, let whole):
            let s: Double?
            if whole {
                s = decimal(text).map { Double($0) }
            } else {
                s = decimalFraction(text)
            }
            guard let s, range.contains(s) else {
                throw bad(
                    "must be \(whole ? "whole " : "")seconds from \(show(range.lowerBound)) to "
                        + show(range.upperBound)
                )
            }
            return .seconds(s)
        case .boolean:
            guard let b = uciBoolean(text) else {
                throw bad("must be a boolean: 1/0, on/off, true/false, yes/no or enabled/disabled")
            }
            return .flag(b)
        case .choice(let words):
            guard words.contains(text) else { throw bad("must be \(sentence(words, "or"))") }
            return .text(text)
        case .path(let maxBytes):
            guard text.hasPrefix("/") else { throw bad("must be an absolute path") }
            if let maxBytes, text.utf8.count > maxBytes {
                throw bad("must be an absolute path of at most \(maxBytes) bytes")
            }
            return .text(text)
        case .device:
            // The kernel's dev_valid_name(): 1 to 15 bytes, not "." or "..", no '/', ':' or white space.
            let ok =
                !text.isEmpty && text.utf8.count < 16 && text != "." && text != ".."
                && !text.contains(where: { $0 == "/" || $0 == ":" || $0.isWhitespace })
            guard ok else { throw bad("must be an interface name of 1 to 15 bytes without '/', ':' or spaces") }
            return .text(text)
        case .rate:
            guard let n = rate(text) else {
                throw bad("must be bits per second, a whole number with an optional k, M or G suffix")
            }
            return .number(n)
        case .mark:
            let n = text.hasPrefix("0x") ? UInt32(text.dropFirst(2), radix: 16) : UInt32(text)
            guard let n else { throw bad("must be a 32-bit mark, decimal or 0x hexadecimal") }
            return .number(UInt64(n))
        case .hostName:
            let ok =
                IPAddress(text) != nil
                || (!text.isEmpty && text.utf8.count <= 253
                    && text.utf8.allSatisfy { isAlphanumeric($0) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f })
            guard ok else { throw bad("must be a DNS name or an IP address") }
            return .text(text)
        case .endpoint:
            guard let e = endpoint(text) else {
                throw bad("must be ADDRESS:PORT, an IPv6 address in brackets ([2001:db8::1]:9100), port 1-65535")
            }
            return .endpoint(e)
        case .hostOrAddress:
            if IPAddress(text) != nil { return .text(text) }
            let labels = text.split(separator: ".", omittingEmptySubsequences: false)
            let ok =
                !text.isEmpty && text.utf8.count <= 253
                && labels.allSatisfy { l in
                    !l.isEmpty && l.utf8.count <= 63 && !l.hasPrefix("-") && !l.hasSuffix("-")
                        && l.utf8.allSatisfy { isAlphanumeric($0) || $0 == 0x2d }
                }
                && !(labels.last?.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } ?? true)
            guard ok else { throw bad("not an IP address or a DNS name") }
            return .text(text)
        case .macAddress:
            guard let m = MACAddress(text) else {
                throw bad("must be an Ethernet address: six hexadecimal octets separated by ':'")
            }
            return .macAddress(m)
        case .store:
            _ = try StoreLocation(text)
            return .text(text)
        case .uplinkShare:
            guard UplinkShare(text) != nil else {
                throw bad(
                    "must be UPLINK=N: an uplink's section name (letters, digits and '_', at most "
                        + "\(UplinkShare.maximumNameBytes) bytes) and a percentage from 0 to 100")
            }
            return .text(text)
        case .reference:
            guard !text.isEmpty, text.utf8.allSatisfy({ isAlphanumeric($0) || $0 == 0x5f }) else {
                throw bad("must be a section name: letters, digits and '_'")
            }
            return .text(text)
        case .bytes:
            guard let n = bytes(text) else {
                throw bad("must be bytes, a whole number with an optional k, M, G or T suffix (1000-based)")
            }
            return .number(n)
        case .listener(let defaultPort):
            guard ListenerSetting(text, defaultPort: defaultPort) != nil else {
                throw bad("must be off, lan, lan:PORT, ADDRESS, ADDRESS:PORT or [IPv6]:PORT")
            }
            return .text(text)
        }
    }

    /// `a.b.c.d:port` or `[v6]:port`; the brackets keep an IPv6 address's colons apart from the port's.
    static func endpoint(_ text: String) -> Endpoint? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0
        else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("[") {
            guard host.hasSuffix("]") else { return nil }
            host = host.dropFirst().dropLast()
            guard let a = IPAddress(String(host)), !a.isIPv4 else { return nil }
            return Endpoint(address: a, port: port)
        }
        guard let a = IPAddress(String(host)), a.isIPv4 else { return nil }
        return Endpoint(address: a, port: port)
    }

    /// uci's boolean spellings, as its `uci_lookup_bool`-style readers accept them.
    public static func uciBoolean(_ text: String) -> Bool? {
        switch text {
        case "1", "on", "true", "yes", "enabled": true
        case "0", "off", "false", "no", "disabled": false
        default: nil
        }
    }

    static func decimal(_ text: String) -> UInt64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(text)
    }

    static func decimalFraction(_ text: String) -> Double? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard decimal(String(parts[0])) != nil else { return nil }
        if parts.count == 2 && decimal(String(parts[1])) == nil { return nil }
        return Double(text)
    }

    /// `50M` is 50 000 000: rates are 1000-based, as line rates are sold.
    static func rate(_ text: String) -> UInt64? {
        var digits = Substring(text)
        var scale: UInt64 = 1
        switch text.last {
        case "k": scale = 1_000
        case "M": scale = 1_000_000
        case "G": scale = 1_000_000_000
        default: break
        }
        if scale != 1 { digits = digits.dropLast() }
        guard let n = decimal(String(digits)) else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }

    /// `20G` is 20 000 000 000 bytes: 1000-based like `rate`, as carriers count a plan's gigabytes.
    static func bytes(_ text: String) -> UInt64? {
        guard text.last == "T", let n = decimal(String(text.dropLast())) else { return rate(text) }
        let (product, overflow) = n.multipliedReportingOverflow(by: 1_000_000_000_000)
        return overflow ? nil : product
    }

    public static func isAlphanumeric(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
    }

    static func show(_ d: Double) -> String {
        d == d.rounded() ? String(Int64(d)) : String(d)
    }

    static func sentence(_ words: [String], _ conjunction: String) -> String {
        guard words.count > 1 else { return words.first ?? "" }
        return words.dropLast().joined(separator: ", ") + " \(conjunction) " + words.last!
    }
}
