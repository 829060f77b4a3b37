import BraidCore
import Foundation
import XCTest

@testable import BraidConfig

/// `braid check`: every problem of a broken file as `FILE:LINE: section.option: message (value)`.
final class CheckTests: XCTestCase {
    /// The smallest valid gateway; cases below add lines from line 5 on.
    let gateway = """
        config gateway 'main'
        \toption server '198.18.10.2'
        \toption psk_file '/etc/braid/psk'
        \tlist lan_device 'br-lan'

        """

    /// The smallest valid concentrator; cases below add lines from line 3 on.
    let concentrator = """
        config concentrator 'main'
        \toption psk_file '/etc/braid/psk'

        """

    func problems(_ text: String, role: ConfigRole? = nil) -> [String] {
        do {
            let reader = BraidConfigReader(package: try UCIParser.parse(text, file: "braid.conf"))
            return reader.check(role: role).problems.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    func testMinimalFilesAreValid() {
        XCTAssertEqual(problems(gateway), [])
        XCTAssertEqual(problems(concentrator), [])
        let reader = BraidConfigReader(package: try! UCIParser.parse(gateway + concentrator.replacingOccurrences(of: "'main'", with: "'dc'"), file: "both"))
        XCTAssertEqual(reader.check().roles, [.gateway, .concentrator])
    }

    /// What `deny_port` and `allow_port` say about a value that is not a port or a range of ports.
    let portRangeError = "must be a port 1-65535 or a range LOW-HIGH of them with LOW <= HIGH"

    func testBrokenConfigs() {
        let cases: [(name: String, text: String, expected: [String])] = [
            (
                "port out of range", gateway + "\toption port '0'\n",
                ["braid.conf:5: main.port: must be a port number 1-65535 (0)"]
            ),
            (
                "port not a number", concentrator + "\toption control_port 'tls'\n",
                ["braid.conf:3: main.control_port: must be a port number 1-65535 (tls)"]
            ),
            (
                "address", gateway.replacingOccurrences(of: "198.18.10.2", with: "198.18.10"),
                ["braid.conf:2: main.server: not an IP address or a DNS name (198.18.10)"]
            ),
            (
                "prefix", concentrator + "\tlist deny_dest '10.0.0.0/8'\n\tlist deny_dest '10.0.0.0/33'\n",
                ["braid.conf:3: main.deny_dest: not an address or CIDR prefix (10.0.0.0/33)"]
            ),
            (
                "port range backwards", concentrator + "\tlist deny_port '25'\n\tlist deny_port '8080-8000'\n",
                ["braid.conf:3: main.deny_port: \(portRangeError) (8080-8000)"]
            ),
            (
                "port range not a number", concentrator + "\tlist allow_port 'https'\n",
                ["braid.conf:3: main.allow_port: \(portRangeError) (https)"]
            ),
            (
                "port zero", concentrator + "\tlist allow_port '0-1023'\n",
                ["braid.conf:3: main.allow_port: \(portRangeError) (0-1023)"]
            ),
            (
                "allow_dest", concentrator + "\tlist allow_dest '172.16.5.0/24'\n\tlist allow_dest 'fd00::/129'\n",
                ["braid.conf:3: main.allow_dest: not an address or CIDR prefix (fd00::/129)"]
            ),
            (
                "unknown option", gateway + "\toption colour 'blue'\n",
                ["braid.conf:5: main.colour: unknown option (blue)"]
            ),
            (
                "unknown section type", gateway + "config tunnel 'gre1'\n\toption device 'gre1'\n",
                ["braid.conf:5: gre1: unknown section type (tunnel)"]
            ),
            (
                "unknown anonymous section type", concentrator + "config tunnel\n",
                ["braid.conf:3: @tunnel[0]: unknown section type (tunnel)"]
            ),
            (
                "missing required option",
                gateway.replacingOccurrences(of: "\toption server '198.18.10.2'\n", with: ""),
                ["braid.conf:1: main.server: required list is not set"]
            ),
            (
                "missing required list", gateway.replacingOccurrences(of: "\tlist lan_device 'br-lan'\n", with: ""),
                ["braid.conf:1: main.lan_device: required list is not set"]
            ),
            (
                "missing required uplink device", gateway + "config uplink 'dsl'\n\toption role 'backup'\n",
                ["braid.conf:5: dsl.device: required option is not set"]
            ),
            (
                "list where an option is expected", gateway + "\tlist port '4800'\n\tlist port '4900'\n",
                ["braid.conf:5: main.port: must be an option, not a list (4800 4900)"]
            ),
            (
                "boolean", gateway + "\toption fastopen 'maybe'\n",
                [
                    "braid.conf:5: main.fastopen: must be a boolean: 1/0, on/off, true/false, yes/no or "
                        + "enabled/disabled (maybe)"
                ]
            ),
            (
                "rate with a unit word", concentrator + "config class 'gold'\n\toption rate_down '50Mbit'\n",
                [
                    "braid.conf:4: gold.rate_down: must be bits per second, a whole number with an optional k, M or "
                        + "G suffix (50Mbit)"
                ]
            ),
            (
                "rate beyond 64 bits", concentrator + "config class 'gold'\n\toption rate_up '18446744073709551615G'\n",
                [
                    "braid.conf:4: gold.rate_up: must be bits per second, a whole number with an optional k, M or "
                        + "G suffix (18446744073709551615G)"
                ]
            ),
            (
                "subscriber of a missing class",
                concentrator + "config class 'gold'\nconfig subscriber 'cpe_1'\n\toption class 'silver'\n",
                ["braid.conf:5: cpe_1.class: no 'config class' section has this name (silver)"]
            ),
            (
                "anonymous class", concentrator + "config class\n\toption max_sessions '10'\n",
                ["braid.conf:3: @class[0]: 'config class' needs a name, as in config class 'NAME'"]
            ),
            (
                "device used twice",
                gateway + "config uplink 'dsl'\n\toption device 'wan0'\nconfig uplink 'lte'\n\toption device 'wan0'\n",
                ["braid.conf:8: lte.device: already used by uplink dsl (wan0)"]
            ),
            (
                "device name too long", gateway + "config uplink 'dsl'\n\toption device 'pppoe-wan-office'\n",
                [
                    "braid.conf:6: dsl.device: must be an interface name of 1 to 15 bytes without '/', ':' or "
                        + "spaces (pppoe-wan-office)"
                ]
            ),
            (
                "uplink role", gateway + "config uplink\n\toption device 'wan0'\n\toption role 'primary'\n",
                ["braid.conf:7: @uplink[0].role: must be active, backup, off or overflow (primary)"]
            ),
            (
                "uplink in a kernel table",
                gateway + "config uplink 'dsl'\n\toption device 'wan0'\n\toption table '254'\n",
                ["braid.conf:7: dsl.table: is one of the kernel's tables (253 default, 254 main, 255 local) (254)"]
            ),
            (
                "uplink table taken by the next uplink's default",
                gateway + "config uplink 'dsl'\n\toption device 'wan0'\n\toption table '4802'\n"
                    + "config uplink 'lte'\n\toption device 'wan1'\n",
                ["braid.conf:8: lte.table: already used by uplink dsl (4802)"]
            ),
            (
                "down_after below two probe intervals",
                gateway + "\toption probe_interval '500'\n\toption down_after '800'\n",
                ["braid.conf:6: main.down_after: must be at least twice probe_interval, 1000 (800)"]
            ),
            (
                "probe_interval out of range", gateway + "\toption probe_interval '10'\n",
                ["braid.conf:5: main.probe_interval: must be milliseconds from 20 to 60000 (10)"]
            ),
            (
                "max_subflows above the kernel's limit", gateway + "\toption max_subflows '9'\n",
                ["braid.conf:5: main.max_subflows: must be a whole number from 0 to 8 (9)"]
            ),
            (
                "mark", gateway + "\toption fwmark '0xbraid'\n",
                ["braid.conf:5: main.fwmark: must be a 32-bit mark, decimal or 0x hexadecimal (0xbraid)"]
            ),
            (
                "status socket too long",
                gateway + "\toption status_socket '/run/" + String(repeating: "s", count: 103) + "'\n",
                [
                    "braid.conf:5: main.status_socket: must be an absolute path of at most 107 bytes (/run/"
                        + String(repeating: "s", count: 103) + ")"
                ]
            ),
            (
                "relative path", concentrator.replacingOccurrences(of: "/etc/braid/psk", with: "psk"),
                ["braid.conf:2: main.psk_file: must be an absolute path (psk)"]
            ),
            (
                "partial TLS files", gateway + "\toption ca '/etc/braid/ca.pem'\n\toption cert '/etc/braid/gw.pem'\n",
                ["braid.conf:1: main.key: required with ca and cert"]
            ),
            (
                "revocation list without TLS", concentrator + "\toption crl '/etc/braid/crl.pem'\n",
                ["braid.conf:3: main.crl: needs ca, cert and key (/etc/braid/crl.pem)"]
            ),
            (
                "session lifetime too short", concentrator + "\toption session_lifetime '30'\n",
                ["braid.conf:3: main.session_lifetime: must be whole seconds from 60 to 86400 (30)"]
            ),
            (
                "handshake timeout not a number", concentrator + "\toption handshake_timeout '5s'\n",
                ["braid.conf:3: main.handshake_timeout: must be seconds from 0.1 to 300 (5s)"]
            ),
            (
                "control port equal to the data port", concentrator + "\toption control_port '4800'\n",
                ["braid.conf:3: main.control_port: must differ from port (4800)"]
            ),
            (
                "server name with a space", gateway + "\toption server_name 'my concentrator'\n",
                ["braid.conf:5: main.server_name: must be a DNS name or an IP address (my concentrator)"]
            ),
            (
                "two gateway sections", gateway + "config gateway 'second'\n",
                [
                    "braid.conf:5: second: more than one 'config gateway' section",
                    "braid.conf:5: second.server: required list is not set",
                    "braid.conf:5: second.lan_device: required list is not set",
                ]
            ),
            (
                "no role section", "config uplink 'dsl'\n\toption device 'wan0'\n",
                ["braid.conf:0: no 'config gateway' or 'config concentrator' section"]
            ),
            (
                "every problem, in file order",
                "config uplink 'dsl'\n\toption device 'wan0'\n\toption weight '3'\n"
                    + gateway.replacingOccurrences(of: "'br-lan'", with: "'br/lan'") + "\toption port '65536'\n",
                [
                    "braid.conf:3: dsl.weight: unknown option (3)",
                    "braid.conf:7: main.lan_device: must be an interface name of 1 to 15 bytes without '/', ':' or "
                        + "spaces (br/lan)",
                    "braid.conf:8: main.port: must be a port number 1-65535 (65536)",
                ]
            ),
        ]
        XCTAssertGreaterThanOrEqual(cases.count, 15)
        for c in cases {
            XCTAssertEqual(problems(c.text), c.expected, c.name)
        }
    }

    /// A name that goes on the wire or into a certificate is refused by `check` when it cannot fit
    /// there: a class name of 256 bytes once passed and then stopped the concentrator at the first
    /// hello of a subscriber in that class.
    func testNamesTooLongForTheWireOrACertificate() {
        let longClass = String(repeating: "c", count: 256)
        let text = concentrator + "\nconfig class '\(longClass)'\n\nconfig subscriber 'cpe_1'\n\toption class '\(longClass)'\n"
        XCTAssertEqual(problems(text), ["braid.conf:4: \(longClass): name of 256 bytes, at most 255 (\(longClass))"])
        let fits = String(repeating: "c", count: 255)
        XCTAssertEqual(problems(text.replacingOccurrences(of: longClass, with: fits)), [])
        let longSubscriber = String(repeating: "s", count: 65)
        XCTAssertEqual(
            problems(concentrator + "\nconfig class 'standard'\n\nconfig subscriber '\(longSubscriber)'\n\toption class 'standard'\n"),
            ["braid.conf:6: \(longSubscriber): name of 65 bytes, at most 64 (\(longSubscriber))"])
    }

    /// Secrets that group or others may read are refused with the file and its mode, as ssh does.
    func testPresharedKeyReadableByOthersIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-psk-\(getpid())").path
        defer { unlink(path) }
        FileManager.default.createFile(atPath: path, contents: Data((PresharedKey.encode(Array(repeating: 7, count: 32)) + "\n").utf8))
        chmod(path, 0o600)
        XCTAssertEqual(try PresharedKey.load(path: path), Array(repeating: 7, count: 32))
        for mode: mode_t in [0o644, 0o640, 0o604, 0o620] {
            chmod(path, mode)
            XCTAssertThrowsError(try PresharedKey.load(path: path)) { error in
                XCTAssertEqual(
                    "\(error)",
                    "\(path):0: permissions \(String(mode, radix: 8)) for \(path) are too open: a secret must be "
                        + "readable by its owner only (chmod 600 \(path))")
            }
        }
    }

    /// braid empties table_base after a crash: one of the kernel's own tables would lose its routes.
    func testTableBaseIsNotAKernelTable() {
        XCTAssertEqual(
            problems(gateway + "\toption table_base '254'\n"),
            ["braid.conf:5: main.table_base: is one of the kernel's tables (253 default, 254 main, 255 local) (254)"])
    }

    func testRoleGivenButNotInTheFile() {
        XCTAssertEqual(problems(concentrator, role: .gateway), ["braid.conf:0: no 'config gateway' section"])
        // Sections of the other role are not checked for this one.
        let both = gateway + concentrator.replacingOccurrences(of: "'main'", with: "'dc'") + "config class\n"
        XCTAssertEqual(problems(both, role: .gateway), [])
        XCTAssertEqual(
            problems(both),
            ["braid.conf:7: @class[0]: 'config class' needs a name, as in config class 'NAME'"])
    }

    func testSingleOptionAcceptedForAList() {
        XCTAssertEqual(problems(gateway.replacingOccurrences(of: "list lan_device", with: "option lan_device")), [])
    }

    func testBooleanSpellings() throws {
        for (text, value) in [
            ("1", true), ("on", true), ("true", true), ("yes", true), ("enabled", true),
            ("0", false), ("off", false), ("false", false), ("no", false), ("disabled", false),
        ] {
            var reader = BraidConfigReader(
                package: try UCIParser.parse(gateway + "\toption fastopen '\(text)'\n", file: "b"))
            XCTAssertEqual(try reader.gateway().fastOpen, value, text)
        }
        XCTAssertNil(ConfigSchema.uciBoolean("Yes"))
    }

    func testRates() throws {
        for (text, bits) in [
            ("0", 0), ("64000", 64_000), ("1500k", 1_500_000), ("50M", 50_000_000), ("2G", 2_000_000_000),
        ] {
            XCTAssertEqual(try ConfigSchema.parse(text, as: .rate), .number(UInt64(bits)), text)
        }
        for text in ["", "M", "50m", "1.5M", "-1", "50 M", "50T"] {
            XCTAssertThrowsError(try ConfigSchema.parse(text, as: .rate), text)
        }
    }

    func testGatewayDefaultsAndTLS() throws {
        var reader = BraidConfigReader(package: try UCIParser.parse(gateway, file: "g"))
        var c = try reader.gateway()
        XCTAssertEqual(c.controlPort, 4803)
        XCTAssertNil(c.tls)
        XCTAssertEqual(c.serverName, "198.18.10.2")
        XCTAssertEqual(c.fwmark, 0x6272)
        XCTAssertEqual(c.tableBase, 4800)
        XCTAssertEqual(c.maxSubflows, 8)
        XCTAssertEqual(c.probeInterval, 200)
        XCTAssertEqual(c.downAfter, 1000)
        XCTAssertEqual(c.upAfter, 3)
        XCTAssertEqual(c.statusSocket, "/run/braid/gateway.sock")

        let tls = """
            \toption control_port '8443'
            \toption ca '/etc/braid/ca.pem'
            \toption cert '/etc/braid/gw.pem'
            \toption key '/etc/braid/gw.key'
            \toption server_name 'concentrator.example.net'
            \toption fwmark '25202'
            """
        reader = BraidConfigReader(package: try UCIParser.parse(gateway + tls, file: "g"))
        c = try reader.gateway()
        XCTAssertEqual(c.controlPort, 8443)
        XCTAssertEqual(c.tls, TLSFiles(ca: "/etc/braid/ca.pem", cert: "/etc/braid/gw.pem", key: "/etc/braid/gw.key"))
        XCTAssertEqual(c.serverName, "concentrator.example.net")
        XCTAssertEqual(c.fwmark, 25202)
    }

    func testConcentratorClassesAndSubscribers() throws {
        let text =
            concentrator + """
                \toption ca '/etc/braid/ca.pem'
                \toption cert '/etc/braid/c.pem'
                \toption key '/etc/braid/c.key'
                \toption crl '/etc/braid/crl.pem'
                \toption session_lifetime '600'
                \toption handshake_timeout '2.5'
                config class 'gold'
                \toption rate_down '100M'
                \toption rate_up '20M'
                \toption max_sessions '500'
                config class 'basic'
                config subscriber 'cpe_0001'
                \toption class 'gold'
                config subscriber 'cpe_0002'
                \toption class 'basic'
                \toption enabled 'no'
                """
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "c"))
        let c = try reader.concentrator()
        XCTAssertEqual(c.controlPort, 4803)
        XCTAssertEqual(c.tls?.crl, "/etc/braid/crl.pem")
        XCTAssertEqual(c.tls?.key, "/etc/braid/c.key")
        XCTAssertEqual(c.sessionLifetime, 600)
        XCTAssertEqual(c.handshakeTimeout, 2.5)
        XCTAssertEqual(
            c.classes,
            [
                ServiceClass(name: "gold", rateDown: 100_000_000, rateUp: 20_000_000, maxSessions: 500),
                ServiceClass(name: "basic"),
            ])
        XCTAssertEqual(
            c.subscribers,
            [
                Subscriber(name: "cpe_0001", serviceClass: "gold"),
                Subscriber(name: "cpe_0002", serviceClass: "basic", enabled: false),
            ])
    }

    // MARK: - the schema's own consistency and the files rendered from it

    func testDefaultsAndExamplesFitTheirTypes() {
        for section in ConfigSchema.braid.sections {
            for o in section.options {
                let place = "\(section.type).\(o.name)"
                for text in [o.defaultValue, o.example].compactMap({ $0 }) {
                    XCTAssertNoThrow(try ConfigSchema.parse(text, as: o.type), "\(place) '\(text)'")
                }
                // The rendered default package shows every option with a value.
                XCTAssertTrue(o.required || o.defaultValue != nil || o.example != nil, "\(place) has nothing to show")
                XCTAssertFalse(o.required && o.defaultValue != nil, "\(place) is required but has a default")
                XCTAssertFalse(o.doc.isEmpty, place)
            }
        }
    }

    func testRenderedPackagesPassCheck() throws {
        for role in ConfigRole.allCases {
            for uncommented in [false, true] {
                let text = ConfigSchema.braid.render(.forRole(role), uncommented: uncommented)
                let reader = BraidConfigReader(package: try UCIParser.parse(text, file: "\(role).conf"))
                let result = reader.check()
                XCTAssertEqual(result.roles, [role])
                XCTAssertEqual(result.problems.map(\.description), [], "\(role), uncommented: \(uncommented)")
            }
        }
    }

    func testRenderedPackageNamesEveryOption() {
        for role in ConfigRole.allCases {
            let text = ConfigSchema.braid.render(.forRole(role))
            for section in ConfigSchema.braid.sections(for: role) {
                XCTAssertTrue(text.contains("config \(section.type) '"), "\(role): config \(section.type)")
                for o in section.options {
                    XCTAssertTrue(text.contains("\(o.kind.rawValue) \(o.name) '"), "\(role): \(section.type).\(o.name)")
                }
            }
        }
    }

    /// The repository's root, found from this file's path (Tests/BraidConfigTests/CheckTests.swift).
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func committed(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    func testCommittedConfigIsRenderedFromTheSchema() throws {
        for role in ConfigRole.allCases {
            XCTAssertEqual(
                try committed("Config/\(role).conf"), ConfigSchema.braid.render(.forRole(role)),
                "Config/\(role).conf is not current: run `make config`")
        }
    }

    func testCommittedDocsAreRenderedFromTheSchema() throws {
        XCTAssertEqual(
            try committed("docs/configuration.md"), ConfigSchema.braid.renderMarkdown(),
            "docs/configuration.md is not current: run `make config`")
    }
}

/// `config rule` and `default_action`: what is read, and each combination the data path cannot do.
final class RuleCheckTests: XCTestCase {
    let head = """
        config gateway 'main'
        \toption server '198.18.10.2'
        \toption psk_file '/etc/braid/psk'
        \tlist lan_device 'br-lan'
        \toption default_action 'direct'

        config uplink 'lte'
        \toption device 'wwan0'

        """

    func read(_ rules: String) -> (GatewayConfig?, [String]) {
        do {
            var reader = BraidConfigReader(package: try UCIParser.parse(head + rules, file: "braid.conf"))
            let problems = reader.check(role: .gateway).problems.map(\.description)
            return (try? reader.gateway(), problems)
        } catch {
            return (nil, ["\(error)"])
        }
    }

    func testRulesAreReadInFileOrder() {
        let (config, problems) = read(
            """
            config rule 'bank'
            \tlist dest '198.51.100.0/24'
            \tlist dest '2001:db8:5::/48'
            \tlist dest_port '443'
            \toption action 'direct'
            \toption uplink 'lte'

            config rule
            \tlist src_mac '02-00-5E-10-00-01'
            \toption proto 'any'
            \toption action 'block'

            """)
        XCTAssertEqual(problems, [])
        XCTAssertEqual(config?.defaultAction, .direct)
        XCTAssertEqual(config?.rules.map(\.name), ["bank", "@rule[1]"])
        XCTAssertEqual(config?.rules.first?.destinations.map(\.description), ["198.51.100.0/24", "2001:db8:5::/48"])
        XCTAssertEqual(config?.rules.first?.uplink, "lte")
        XCTAssertEqual(config?.rules.last?.sourceMACs.map(\.description), ["02:00:5e:10:00:01"])
        XCTAssertEqual(config?.rules.last?.proto, .any)
    }

    func testEachProblemNamesTheRuleAndTheValue() {
        let (_, problems) = read(
            """
            config rule 'a'
            \toption proto 'udp'
            \toption action 'bond'

            config rule 'b'
            \toption action 'block'
            \toption uplink 'lte'

            config rule 'c'
            \toption action 'direct'
            \toption uplink 'dsl'

            config rule 'd'
            \tlist src_mac '02:00:5e:10:00'
            \tlist dest_port '90-80'
            \toption action 'allow'

            config rule 'e'
            \tlist src '198.18.0.0/24'
            \tlist dest '2001:db8::/32'
            \toption action 'direct'

            config rule 'f'
            \tlist dest '198.51.100.1'

            """)
        XCTAssertEqual(
            problems,
            [
                "braid.conf:10: a.proto: a bond rule needs tcp or any: only TCP is relayed (udp)",
                "braid.conf:15: b.uplink: only a direct rule names an uplink (action is block) (lte)",
                "braid.conf:19: c.uplink: no 'config uplink' section has this name (dsl)",
                "braid.conf:22: d.src_mac: must be an Ethernet address: six hexadecimal octets separated by ':' "
                    + "(02:00:5e:10:00)",
                "braid.conf:23: d.dest_port: must be a port 1-65535 or a range LOW-HIGH of them with LOW <= HIGH "
                    + "(90-80)",
                "braid.conf:24: d.action: must be bond, direct or block (allow)",
                "braid.conf:28: e.dest: no destination is of the family of a src, so the rule never matches "
                    + "(2001:db8::/32)",
                "braid.conf:31: f.action: required option is not set",
            ])
    }

    func testARuleChangeIsALiveChange() throws {
        let (old, _) = read("")
        var new = try XCTUnwrap(old)
        new.rules = [TrafficRule(name: "bank", action: .direct)]
        new.defaultAction = .bond
        let diff = GatewayConfigDiff(from: try XCTUnwrap(old), to: new)
        XCTAssertEqual(diff.fixed, [])
        XCTAssertEqual(diff.summary, "rules 0 -> 1; default_action direct -> bond")
    }
}
