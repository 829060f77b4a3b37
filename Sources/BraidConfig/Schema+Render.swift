/// A default package for one role: which sections it holds and the values that differ from the schema's.
public struct ConfigTemplate: Sendable {
    public struct Section: Sendable {
        public var type: String
        public var name: String
        /// Values written instead of the option's example or default.
        public var values: [String: String]
        /// Each option with its description; otherwise only the options given in `values`.
        public var documented: Bool
        /// The whole section as comments, to be uncommented by the operator.
        public var commentedOut: Bool

        public init(
            _ type: String, _ name: String, _ values: [String: String] = [:], documented: Bool = true,
            commentedOut: Bool = false
        ) {
            self.type = type
            self.name = name
            self.values = values
            self.documented = documented
            self.commentedOut = commentedOut
        }
    }

    public var role: ConfigRole
    public var header: [String]
    public var sections: [Section]
}

extension ConfigSchema {
    /// Renders a role's default package. With `uncommented`, every commented-out section and option is
    /// written live instead, which lets a test check the examples as well as the defaults.
    public func render(_ template: ConfigTemplate, uncommented: Bool = false) -> String {
        var out = template.header.map { "# \($0)" }
        for t in template.sections {
            guard let schema = section(t.type, role: template.role) else {
                preconditionFailure("no section type \(t.type) in the schema")
            }
            let off = t.commentedOut && !uncommented ? "#" : ""
            var lines: [String] = [""]
            if t.documented { lines += wrap(schema.doc, prefix: "# ") }
            lines.append("\(off)config \(t.type) '\(t.name)'")
            for option in schema.options {
                let given = t.values[option.name]
                guard t.documented || given != nil else { continue }
                let value: String
                var live = true
                if let given {
                    value = given
                } else if let example = option.example, option.required {
                    value = example
                } else if let d = option.defaultValue {
                    value = option.example ?? d
                } else {
                    // Optional and without a default: shown with an example, left for the operator to set.
                    value = option.example ?? ""
                    live = uncommented
                }
                if t.documented { lines += wrap("\(option.doc) \(facts(option))", prefix: "\(off)\t# ") }
                let keyword = option.kind == .list ? "list" : "option"
                lines.append("\(off)\t\(live ? "" : "# ")\(keyword) \(option.name) '\(value)'")
            }
            out += lines
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// What a comment adds to an option's description: whether it is required, or its default.
    func facts(_ option: OptionSchema) -> String {
        if option.required { return option.kind == .list ? "Required, one or more." : "Required." }
        if let note = option.defaultNote { return "Default: \(note)." }
        if let d = option.defaultValue { return "Default: \(d)." }
        return "Optional."
    }

    /// `docs/configuration.md`: every section and option with its type, default, role and description.
    public func renderMarkdown() -> String {
        var out = [
            "# Configuration",
            "",
            "<!-- Rendered from the schema (Sources/BraidConfig/Schema+Braid.swift) by `braid config docs`",
            "     (make config); a unit test fails when this file is not current. -->",
            "",
            "Both roles read one UCI package, `/etc/config/braid` by default (`--config FILE` otherwise), in",
            "OpenWrt's format: `config TYPE 'NAME'` starts a section, `option NAME 'VALUE'` sets a value,",
            "`list NAME 'VALUE'` adds one to a list. The role is the file's `config gateway` or",
            "`config concentrator` section; sections of the other role are ignored. Every option with its",
            "default is in [`Config/`](../Config).",
            "",
            "`braid check --config FILE` reports every problem, one per line, and exits 1 if there is any:",
            "",
            "```",
            "/etc/config/braid:4: main.port: must be a port number 1-65535 (70000)",
            "/etc/config/braid:9: dsl.colour: unknown option (blue)",
            "```",
            "",
            "Unknown section types and unknown options are errors, not ignored.",
            "",
            "## Types",
            "",
            "| type | written as |",
            "|---|---|",
            "| address | IPv4 or IPv6 address: `198.18.10.2`, `2001:db8::1` |",
            "| prefix | address or CIDR prefix: `10.0.0.0/8`, `2001:db8::/32` |",
            "| port | 1 to 65535 |",
            "| port range | a port or an inclusive range `LOW-HIGH`: `25`, `8000-8080` |",
            "| integer, milliseconds, seconds | decimal, within the range shown |",
            "| boolean | `1`/`0`, `on`/`off`, `true`/`false`, `yes`/`no`, `enabled`/`disabled` |",
            "| rate | bits per second, optional suffix `k`, `M` or `G` (1000-based): `50M`; `0` is unlimited |",
            "| mark | 32-bit number, decimal or `0x` hexadecimal |",
            "| path | absolute path |",
            "| device | interface name, 1 to 15 bytes, no `/`, `:` or spaces |",
            "| host name | DNS name or IP address |",
        ]
        for schema in sections {
            out += ["", "## `config \(schema.type)`", ""]
            let count =
                switch schema.count {
                case .one: "exactly one section"
                case .many: schema.named ? "any number of named sections" : "any number of sections"
                }
            out += ["\(schema.doc) Role: \(schema.role); \(count).", ""]
            out += ["| option | type | default | role | description |", "|---|---|---|---|---|"]
            for o in schema.options {
                let d =
                    o.required
                    ? "required" : o.defaultNote ?? o.defaultValue.map { "`\($0)`" } ?? "unset"
                let type = (o.kind == .list ? "list of " : "") + typeName(o.type)
                out.append("| `\(o.name)` | \(type) | \(d) | \(schema.role) | \(o.doc) |")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }

    func typeName(_ type: ValueType) -> String {
        switch type {
        case .port: "port"
        case .address: "address"
        case .prefix: "prefix"
        case .portRange: "port range"
        case .uint(let r): "integer \(r.lowerBound)–\(r.upperBound)"
        case .milliseconds(let r): "milliseconds \(r.lowerBound)–\(r.upperBound)"
        case .seconds(let r, _): "seconds \(Self.show(r.lowerBound))–\(Self.show(r.upperBound))"
        case .boolean: "boolean"
        case .choice(let words): "one of " + words.map { "`\($0)`" }.joined(separator: ", ")
        case .path(let max): max.map { "path, at most \($0) bytes" } ?? "path"
        case .device: "device"
        case .rate: "rate"
        case .mark: "mark"
        case .hostName: "host name"
        case .endpoint: "address:port"
        case .hostOrAddress: "address or DNS name"
        case .reference(let t): "name of a `config \(t)`"
        case .listener: "off, lan[:port] or address[:port]"
        case .macAddress: "Ethernet address"
        case .store: "`uci` or a `postgresql://` URL"
        case .uplinkShare: "uplink=percent"
        case .bytes: "bytes (k, M, G, T: 1000-based)"
        }
    }

    /// Wraps a comment at 100 columns (a tab counted as 8) so the rendered files read well in an editor.
    func wrap(_ text: String, prefix: String) -> [String] {
        let width = 100 - prefix.count - (prefix.contains("\t") ? 7 : 0)
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ") {
            if !current.isEmpty && current.count + 1 + word.count > width {
                lines.append(prefix + current)
                current = ""
            }
            current += (current.isEmpty ? "" : " ") + word
        }
        if !current.isEmpty { lines.append(prefix + current) }
        return lines
    }
}
