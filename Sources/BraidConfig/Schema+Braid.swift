import BraidCore

/// braid's configuration: the one table that validation, defaults, `Config/` and
/// `docs/configuration.md` are made from. Add an option here and everything else follows.
extension ConfigSchema {
    public static let braid = ConfigSchema(sections: [
        SectionSchema(
            "gateway", role: .gateway, count: .one,
            doc: "The gateway (CPE): where the concentrator is and which LAN traffic is bonded.",
            options: [
                OptionSchema(
                    "server", .list, .hostOrAddress, required: true, example: "198.18.10.2",
                    doc: "Concentrator address, IPv4 or IPv6, or a DNS name with A and/or AAAA records (resolved at "
                        + "start, at each reload and every 5 minutes). Each uplink reaches the concentrator over its "
                        + "own address family: an IPv6-only uplink uses the IPv6 address, which the name's AAAA "
                        + "record or the concentrator itself (over the TLS control channel) makes known. "
                        + "`list server`, several times, names several concentrators in order of preference (needs "
                        + "ca, cert and key; each one's certificate must carry its entry): new sessions go to the "
                        + "first healthy one. `option server` and `list server` together are an error."),
                OptionSchema(
                    "server_holddown", .seconds(0...3600, whole: false), default: "30",
                    doc: "With `list server`: seconds a more preferred concentrator must have been healthy (control "
                        + "channel up, probes answered) before new sessions go back to it; three keepalives' worth "
                        + "at the default, so a concentrator restarting in a loop does not draw them back and forth."),
                OptionSchema("port", .port, default: "4800", doc: "Concentrator's MPTCP data port."),
                OptionSchema(
                    "control_port", .port, default: "4803", doc: "Concentrator's TLS control port."),
                OptionSchema(
                    "psk_file", .path(maxBytes: nil), example: "/etc/braid/psk",
                    doc: "Pre-shared key from `braid genkey` (32 bytes, base64), the same file as the concentrator's: "
                        + "the simple mode for a single box. Required unless ca, cert and key are set; with them, data "
                        + "connections use the session keys the control channel grants, and this key only until the "
                        + "first grant."),
                OptionSchema(
                    "ca", .path(maxBytes: nil), example: "/etc/braid/ca.pem",
                    doc: "TLS control channel: CA certificates (PEM) the concentrator's certificate must chain to; "
                        + "ca, cert and key are set together or not at all."),
                OptionSchema(
                    "cert", .path(maxBytes: nil), example: "/etc/braid/gateway.pem",
                    doc: "This gateway's certificate (PEM); its subject common name is its subscriber name."),
                OptionSchema(
                    "key", .path(maxBytes: nil), example: "/etc/braid/gateway.key",
                    doc: "Private key of `cert` (PEM), readable by root only."),
                OptionSchema(
                    "keepalive", .seconds(1...300, whole: true), default: "10",
                    doc: "Seconds between two keepalives on the control channel; the concentrator is taken for "
                        + "dead after three without an answer and the channel is opened again (backoff with jitter)."),
                OptionSchema(
                    "server_name", .hostName, defaultNote: "the server address", example: "concentrator.example.net",
                    doc: "Name the concentrator's certificate must carry (subjectAltName DNS name or IP address); "
                        + "data connections' MACs are bound to it, so a request made for one concentrator fails at "
                        + "another sharing the key. Set without ca, cert and key, it only names the concentrator "
                        + "for the MAC (its `identity`)."),
                OptionSchema(
                    "lan_device", .list, .device, required: true, example: "br-lan",
                    doc: "LAN devices whose TCP is intercepted (nftables TPROXY, IPv4 and IPv6)."),
                OptionSchema(
                    "tproxy_port", .port, default: "4801", doc: "Local port of the transparent listener."),
                OptionSchema(
                    "fwmark", .mark, default: "0x6272",
                    doc: "Mark of intercepted packets, routed to the local stack by table table_base."),
                OptionSchema(
                    "table_base", .uint(1...4_294_967_039), default: "4800",
                    doc: "Routing table of the TPROXY `local` route; uplink tables count up from the next one."),
                OptionSchema(
                    "max_subflows", .uint(0...8), default: "8",
                    doc: "Additional MPTCP subflows per connection (the kernel allows at most 8)."),
                OptionSchema(
                    "fastopen", .boolean, default: "0",
                    doc: "Send the Convert message in the SYN (TCP Fast Open); off: see the README's "
                        + "\"Known limits\"."),
                OptionSchema(
                    "probe_interval", .milliseconds(20...60_000), default: "200",
                    doc: "Milliseconds between two end-to-end probes of each uplink (ICMP echo to the concentrator)."),
                OptionSchema(
                    "down_after", .milliseconds(40...600_000), default: "1000",
                    doc: "Milliseconds without an answered probe before an uplink is down; at least two probe "
                        + "intervals."),
                OptionSchema(
                    "up_after", .uint(1...100), default: "3",
                    doc: "Answered probes in a row before a down uplink is up again."),
                OptionSchema(
                    "holddown", .seconds(0...3600, whole: false), default: "10",
                    doc: "Seconds an uplink must have been up before traffic braid does not relay (LAN UDP and "
                        + "ICMP, the box's own) moves back to it from a worse one; a flapping uplink does not drag "
                        + "that traffic back and forth. Moving away from an uplink that goes down is immediate."),
                OptionSchema(
                    "congestion_control", .choice(CongestionControl.allCases.map(\.rawValue)), default: "cubic",
                    doc: "Congestion control of the MPTCP data connections' subflows where this end sends: uploads. "
                        + "`system` keeps the kernel's default (net.ipv4.tcp_congestion_control). Linux's MPTCP "
                        + "scheduler shares data among subflows by their pacing rates, and BBR's can read far above "
                        + "a shaped line's rate: data then waits on the slowest uplink while the others idle (README, "
                        + "Benchmark). An algorithm the kernel lacks is reported at start and the default used."),
                OptionSchema(
                    "quic", .choice(QUICMode.allCases.map(\.rawValue)), default: "tcp",
                    doc: "tcp answers LAN UDP to port 443 (QUIC, HTTP/3) with ICMP port unreachable at once, so "
                        + "browsers fall back to TCP, which braid bonds; pass routes it like other UDP, over one "
                        + "uplink at a time."),
                OptionSchema(
                    "status_socket", .path(maxBytes: 107), default: "/run/braid/gateway.sock",
                    doc: "Unix socket where `braid status` and `braid reload` ask the running gateway."),
                OptionSchema(
                    "web_listen", .listener(defaultPort: 80), default: "lan",
                    doc: "Where the read-only status page is served: `lan` is the first address of the lan_device "
                        + "list (IPv4 first) on port 80, `lan:PORT` the same on another port, `ADDRESS:PORT` a fixed "
                        + "one, `off` none. Only the LAN devices reach it (nftables drops the port elsewhere)."),
                OptionSchema(
                    "metrics_listen", .endpoint, example: "198.18.1.1:9100",
                    doc: "Serve Prometheus metrics at http://ADDRESS:PORT/metrics (off when unset). Whoever reaches "
                        + "the address can read them (uplink names, traffic volumes): bind a management address. "
                        + "An unspecified address (0.0.0.0, [::]) needs metrics_any_address."),
                OptionSchema(
                    "metrics_any_address", .boolean, default: "0",
                    doc: "1 allows metrics_listen on 0.0.0.0 or [::], every address of the host; 0 refuses it, "
                        + "so the metrics are not served to the internet by a slip."),
                OptionSchema(
                    "default_action", .choice(["bond", "direct"]), default: "bond",
                    doc: "What LAN traffic no `config rule` matches gets: bond relays its TCP through the "
                        + "concentrator; direct routes it straight out of the best healthy uplink (the white-list "
                        + "model: only what a rule bonds is bonded)."),
                OptionSchema(
                    "state_dir", .path(maxBytes: nil), default: "/etc/braid/state",
                    doc: "Directory where the uplinks' data-cap usage is kept across restarts and reboots (on flash: "
                        + "written at most once a minute and at a clean stop, by a new file renamed over the old)."),
            ]),
        SectionSchema(
            "uplink", role: .gateway, count: .many,
            doc: "One section per uplink (xDSL, LTE, Ethernet); its name is how logs and `braid status` call it.",
            options: [
                OptionSchema(
                    "device", .device, required: true, example: "pppoe-wan",
                    doc: "Network device of the uplink."),
                OptionSchema(
                    "role", .choice(UplinkRole.allCases.map(\.rawValue)), default: "active",
                    doc: "active carries traffic, backup only when no active uplink is up, off is not used, "
                        + "overflow carries bonded traffic only while the active uplinks are saturated (their probes' "
                        + "round trip grows by 15 ms or more under load) and nothing while they have room."),
                OptionSchema(
                    "gateway", .address, defaultNote: "learned from the device's default route", example: "198.18.5.1",
                    doc: "Next hop; none learned either means the link is point-to-point (PPP)."),
                OptionSchema(
                    "table", .uint(1...4_294_967_295), defaultNote: "table_base + position", example: "4811",
                    doc: "Routing table of the uplink's source rule; 253 to 255 are the kernel's own."),
                OptionSchema(
                    "share", .uint(0...100), default: "100",
                    doc: "The most this uplink carries of the bonded bytes (both directions together, over the last "
                        + "10 seconds), in percent, while another uplink is up: a plan's LTE share. 100 is no cap. A "
                        + "class's `uplink_share` for this uplink, pushed by the concentrator, applies when lower."),
                OptionSchema(
                    "quota", .bytes, defaultNote: "no cap", example: "20G",
                    doc: "Data cap: bytes the device may carry per quota_period, received and sent, bonded, direct "
                        + "and the box's own alike (k, M, G, T are 1000-based, as carriers count). At the cap the "
                        + "uplink turns quota_action until the period ends."),
                OptionSchema(
                    "quota_period", .choice(QuotaPeriodLength.allCases.map(\.rawValue)), defaultNote: "month",
                    example: "month",
                    doc: "Period of the cap: day, week or month, starting at local midnight of quota_reset_day."),
                OptionSchema(
                    "quota_reset_day", .uint(1...31), defaultNote: "1", example: "1",
                    doc: "month: day of the month the count starts over (a day the month lacks, such as the 31st in "
                        + "April, resets on its last day); week: 1 (Monday) to 7 (Sunday); day: not used."),
                OptionSchema(
                    "quota_action", .choice(QuotaAction.allCases.map(\.rawValue)), defaultNote: "backup",
                    example: "backup",
                    doc: "What the uplink becomes at the cap: backup carries traffic only while no active uplink "
                        + "is up; off carries nothing. The configured role comes back when the period ends."),
                OptionSchema(
                    "subflows", .uint(1...4), default: "1",
                    doc: "MPTCP subflows each connection opens over this uplink. Give the fastest uplink 2 when "
                        + "it has twice the rate of the next or more: Linux's scheduler otherwise leaves it idle "
                        + "part of the time (README, Benchmark). The gateway's max_subflows still bounds the total."),
            ]),
        SectionSchema(
            "rule", role: .gateway, count: .many,
            doc: "What to do with chosen LAN traffic, evaluated in file order before anything else; the first rule "
                + "that matches decides. Every option set must match (a list: any of its values); a reload applies "
                + "rules to new connections only.",
            options: [
                OptionSchema(
                    "dest", .list, .prefix, example: "198.51.100.0/24",
                    doc: "Destination addresses or prefixes, IPv4 or IPv6; unset matches any."),
                OptionSchema(
                    "dest_port", .list, .portRange, example: "443",
                    doc: "Destination ports: a port or a range `8000-8080`; unset matches any."),
                OptionSchema(
                    "src", .list, .prefix, example: "198.18.1.0/24",
                    doc: "LAN source addresses or prefixes; unset matches any."),
                OptionSchema(
                    "src_mac", .list, .macAddress, example: "02:00:5e:10:00:01",
                    doc: "LAN source Ethernet addresses; unset matches any."),
                OptionSchema(
                    "proto", .choice(RuleProtocol.allCases.map(\.rawValue)), default: "tcp",
                    doc: "Protocol matched: tcp, udp or any (any with dest_port: TCP and UDP)."),
                OptionSchema(
                    "action", .choice(RuleAction.allCases.map(\.rawValue)), required: true, example: "direct",
                    doc: "bond relays TCP through the concentrator (other protocols are routed as direct); direct "
                        + "routes it out of an uplink, NATed to its address; block refuses it at once (TCP reset, "
                        + "else ICMP administratively prohibited)."),
                OptionSchema(
                    "uplink", .reference("uplink"), defaultNote: "the best healthy uplink", example: "dsl",
                    doc: "direct only: the uplink that carries it while its table has a route (else the best "
                        + "healthy one)."),
            ]),
        SectionSchema(
            "concentrator", role: .concentrator, count: .one,
            doc: "The concentrator: where gateways connect and what they may reach.",
            options: [
                OptionSchema("listen", .address, default: "::", doc: "MPTCP listen address; :: is dual stack."),
                OptionSchema(
                    "announce", .list, .address, defaultNote: "its own addresses when listening on :: or 0.0.0.0, "
                        + "else listen", example: "2001:db8:10::2",
                    doc: "Addresses announced to gateways over the TLS control channel, so each uplink reaches the "
                        + "concentrator over its own family (an IPv6-only uplink at the IPv6 address). Set it when "
                        + "the addresses gateways dial are not the host's own (NAT in front)."),
                OptionSchema("port", .port, default: "4800", doc: "MPTCP data port."),
                OptionSchema("control_port", .port, default: "4803", doc: "TLS control port."),
                OptionSchema(
                    "psk_file", .path(maxBytes: nil), example: "/etc/braid/psk",
                    doc: "Pre-shared key from `braid genkey`, the same file as the gateways' (the simple mode). "
                        + "Required unless ca, cert and key are set; with them, it is refused unless psk_class is "
                        + "set, since a key shared by every box cannot tell a disabled subscriber from others."),
                OptionSchema(
                    "psk_class", .reference("class"), example: "standard",
                    doc: "Service class of data connections authenticated with the pre-shared key, all together as "
                        + "one subscriber: its rates and max_sessions are shared by every holder of the key. With "
                        + "ca, cert and key set, the key is accepted only while this is set (a reload that removes "
                        + "it refuses the key; the file may stay); without them, unset means unlimited."),
                OptionSchema(
                    "identity", .list, .hostName, defaultNote: "cert's common name and the address dialled",
                    example: "conc1.example.net",
                    doc: "Names a data connection's MAC may be bound to (the gateways' `server_name`). Unset, they "
                        + "are the common name of `cert` and the address the connection arrived on; set, only these: "
                        + "give each concentrator sharing a pre-shared key its own (and one behind a DNAT)."),
                OptionSchema(
                    "ca", .path(maxBytes: nil), example: "/etc/braid/ca.pem",
                    doc: "TLS control channel: CA certificates (PEM) gateway certificates must chain to; "
                        + "ca, cert and key are set together or not at all."),
                OptionSchema(
                    "cert", .path(maxBytes: nil), example: "/etc/braid/concentrator.pem",
                    doc: "The concentrator's certificate (PEM)."),
                OptionSchema(
                    "key", .path(maxBytes: nil), example: "/etc/braid/concentrator.key",
                    doc: "Private key of `cert` (PEM), readable by root only."),
                OptionSchema(
                    "crl", .path(maxBytes: nil), example: "/etc/braid/crl.pem",
                    doc: "Certificate revocation list (PEM) checked for gateway certificates; needs ca, cert and key."),
                OptionSchema(
                    "session_lifetime", .seconds(60...86_400, whole: true), default: "3600",
                    doc: "Seconds a session key handed out over the control channel stays valid."),
                OptionSchema(
                    "deny_dest", .list, .prefix, example: "198.51.100.0/24",
                    doc: "Destinations never connected to, on top of the built-in list (private, shared, "
                        + "loopback, link-local, multicast and other special-purpose ranges, cloud metadata "
                        + "addresses, own addresses; IPv6 forms that embed such an IPv4 address)."),
                OptionSchema(
                    "allow_dest", .list, .prefix, example: "10.20.0.0/16",
                    doc: "Destinations opened although the built-in list refuses them (a private service, a lab). "
                        + "The most specific entry of built-in list, deny_dest and allow_dest decides; loopback, "
                        + "unspecified, multicast and reserved ranges and the concentrator's own addresses stay refused."),
                OptionSchema(
                    "deny_port", .list, .portRange, example: "25",
                    doc: "Destination ports never connected to: a port or a range `8000-8080`."),
                OptionSchema(
                    "allow_port", .list, .portRange, example: "443",
                    doc: "When set, only these destination ports are connected to (deny_port still applies)."),
                OptionSchema(
                    "congestion_control", .choice(CongestionControl.allCases.map(\.rawValue)), default: "cubic",
                    doc: "Congestion control of the MPTCP data connections' subflows where this end sends: downloads. "
                        + "`system` keeps the kernel's default (net.ipv4.tcp_congestion_control). Linux's MPTCP "
                        + "scheduler shares data among subflows by their pacing rates, and BBR's can read far above "
                        + "a shaped line's rate: data then waits on the slowest uplink while the others idle (README, "
                        + "Benchmark). An algorithm the kernel lacks is reported at start and the default used."),
                OptionSchema(
                    "handshake_timeout", .seconds(0.1...300, whole: false), default: "2",
                    doc: "Seconds a gateway may take to send its whole Convert message; a connection that stalls "
                        + "longer gets Not Authorized and is closed."),
                OptionSchema(
                    "keepalive", .seconds(0...86_400, whole: true), default: "120",
                    doc: "Seconds a data connection may be silent before the concentrator asks its gateway whether "
                        + "it is still there (TCP keepalive on every subflow; four probes a quarter of this apart). "
                        + "A gateway that lost its power or every uplink has its sessions closed within four times "
                        + "this, instead of holding descriptors and counting against max_sessions for good. 0: never."),
                OptionSchema(
                    "max_pending", .uint(1...1_000_000), default: "16384",
                    doc: "Data connections accepted but not yet authenticated, at most; more are reset at accept."),
                OptionSchema(
                    "max_pending_per_source", .uint(1...1_000_000), default: "1024",
                    doc: "The same, from one IPv4 address or IPv6 /64. A CPE opens its users' connections in bursts "
                        + "(a page load, a sync) from one address; 64 reset real sessions in a 9,750-connection burst."),
                OptionSchema(
                    "max_control_handshakes", .uint(1...100_000), default: "256",
                    doc: "TLS handshakes in progress on the control port, at most; more connections are reset at "
                        + "accept. Each holds a descriptor and a TLS session for up to 10 s. Fewer while handshakes "
                        + "finish slowly: no more than finished in the last 5 s (64 at least)."),
                OptionSchema(
                    "max_control_handshakes_per_source", .uint(1...100_000), default: "16",
                    doc: "The same, from one IPv4 address or IPv6 /64. Gateways behind one carrier-grade NAT "
                        + "address share it; a handshake takes two round trips, so 16 still admit hundreds a second."),
                OptionSchema(
                    "status_socket", .path(maxBytes: 107), default: "/run/braid/concentrator.sock",
                    doc: "Unix socket where `braid status` and `braid reload` ask the running concentrator."),
                OptionSchema(
                    "store", .store, default: "uci",
                    doc: "Where subscribers and classes live: `uci`, the `subscriber` and `class` sections of this "
                        + "file, or a PostgreSQL URL `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` "
                        + "(`?host=/dir` for a Unix socket, `sslmode=disable|prefer|require`) shared by several "
                        + "concentrators, which see a change within 2 s and write usage rows there. With a "
                        + "URL, the file has no subscriber or class sections. A restart applies a change."),
                OptionSchema(
                    "store_password_file", .path(maxBytes: nil), example: "/etc/braid/store-password",
                    doc: "File holding the PostgreSQL password (first line), when the URL has none; readable by "
                        + "the daemon only. The password is never logged. Not read with the uci store."),
                OptionSchema(
                    "accounting_interval", .seconds(1...86_400, whole: true), default: "60",
                    doc: "Seconds per usage row: with a PostgreSQL store, each subscriber's bytes each way are "
                        + "written once per interval (kept in memory, bounded, while the database is away)."),
                OptionSchema(
                    "metrics_listen", .endpoint, example: "198.18.10.2:9101",
                    doc: "Serve Prometheus metrics at http://ADDRESS:PORT/metrics (off when unset). Whoever reaches "
                        + "the address can read them (subscriber names, traffic volumes, refusals): bind a management address. "
                        + "An unspecified address (0.0.0.0, [::]) needs metrics_any_address."),
                OptionSchema(
                    "metrics_any_address", .boolean, default: "0",
                    doc: "1 allows metrics_listen on 0.0.0.0 or [::], every address of the host; 0 refuses it, "
                        + "so the metrics are not served to the internet by a slip."),
            ]),
        SectionSchema(
            "class", role: .concentrator, count: .many, named: true, maxNameBytes: 255,
            doc: "A service class (an operator's plan): limits that apply to each subscriber in it. Its name "
                + "(at most 255 bytes) is sent to the subscriber's gateway over the control channel.",
            options: [
                OptionSchema(
                    "rate_down", .rate, default: "0", example: "50M",
                    doc: "Bits per second towards the subscriber (k, M, G are 1000-based); 0 is unlimited."),
                OptionSchema(
                    "rate_up", .rate, default: "0", example: "10M",
                    doc: "Bits per second from the subscriber; 0 is unlimited."),
                OptionSchema(
                    "max_sessions", .uint(0...4_294_967_295), default: "0",
                    doc: "Open data connections per subscriber; 0 is unlimited."),
                OptionSchema(
                    "uplink_share", .list, .uplinkShare, example: "lte=20",
                    doc: "UPLINK=N: caps the subscribers' uplink of that section name at N percent of their bonded "
                        + "bytes (pushed over the control channel; a reload reaches running gateways at once). The "
                        + "lower of this and the gateway's own `share` applies. At most 8, each uplink once."),
            ]),
        SectionSchema(
            "subscriber", role: .concentrator, count: .many, named: true, maxNameBytes: 64,
            doc: "A gateway known by its certificate: the section name is the certificate's subject common name "
                + "(so letters, digits and '_' only, as uci names are, and at most 64 bytes, X.509's limit).",
            options: [
                OptionSchema(
                    "class", .reference("class"), required: true, example: "standard",
                    doc: "Service class: the name of a `config class` section."),
                OptionSchema(
                    "enabled", .boolean, default: "1",
                    doc: "0 refuses this subscriber's control and data connections."),
            ]),
        {
            var rule = SectionSchema(
                "rule", role: .concentrator, count: .many,
                doc: "An operator-provisioned rule: pushed over the TLS control channel to the gateways of its class, "
                    + "which evaluate these in file order after their own rules and before their default_action. "
                    + "Matches and actions are the gateway's; a reload reaches running gateways within seconds and "
                    + "applies to their new connections only. At most \(OperatorRuleLimits.maximumRules) rules "
                    + "per class, \(OperatorRuleLimits.maximumPayloadSize) bytes encoded.",
                options: [
                    OptionSchema(
                        "class", .reference("class"), required: true, example: "standard",
                        doc: "Service class whose gateways get the rule: the name of a `config class` section (the "
                            + "uci store; a PostgreSQL store's classes take no rules yet)."),
                    OptionSchema(
                        "dest", .list, .prefix, example: "198.51.100.0/24",
                        doc: "Destination addresses or prefixes, IPv4 or IPv6; unset matches any."),
                    OptionSchema(
                        "dest_port", .list, .portRange, example: "443",
                        doc: "Destination ports: a port or a range `8000-8080`; unset matches any."),
                    OptionSchema(
                        "src", .list, .prefix, example: "198.18.1.0/24",
                        doc: "LAN source addresses or prefixes at the gateway; unset matches any."),
                    OptionSchema(
                        "src_mac", .list, .macAddress, example: "02:00:5e:10:00:01",
                        doc: "LAN source Ethernet addresses at the gateway; unset matches any."),
                    OptionSchema(
                        "proto", .choice(RuleProtocol.allCases.map(\.rawValue)), default: "tcp",
                        doc: "Protocol matched: tcp, udp or any (any with dest_port: TCP and UDP)."),
                    OptionSchema(
                        "action", .choice(RuleAction.allCases.map(\.rawValue)), required: true, example: "direct",
                        doc: "bond, direct (out of the gateway's best healthy uplink) or block, as on the gateway."),
                ])
            rule.refusedOptions = [
                "uplink": "an operator rule cannot name an uplink: the concentrator does not know a gateway's "
                    + "uplinks (a direct rule leaves by the best healthy one)"
            ]
            return rule
        }(),
    ])
}

extension ConfigTemplate {
    /// `Config/gateway.conf`: every gateway option with a practical value or its default.
    public static let gateway = ConfigTemplate(
        role: .gateway,
        header: [
            "braid gateway (CPE): /etc/config/braid on the box.",
            "Every option, with its default or a practical value; `braid check --config FILE` validates a copy.",
            "Rendered from the schema by `braid config defaults gateway` (make config).",
        ],
        sections: [
            // The pre-shared key is the simple mode a single box starts with.
            .init("gateway", "main", ["psk_file": "/etc/braid/psk"]),
            .init("uplink", "dsl", ["device": "pppoe-wan", "role": "active"]),
            .init("uplink", "lte", ["device": "wwan0", "role": "backup"], documented: false),
            // Commented out: which traffic bypasses the bond is the installer's decision.
            .init("rule", "bank", commentedOut: true),
        ])

    /// `Config/concentrator.conf`: every concentrator option with a practical value or its default.
    public static let concentrator = ConfigTemplate(
        role: .concentrator,
        header: [
            "braid concentrator: /etc/config/braid in the data centre.",
            "Every option, with its default or a practical value; `braid check --config FILE` validates a copy.",
            "Rendered from the schema by `braid config defaults concentrator` (make config).",
        ],
        sections: [
            .init("concentrator", "main", ["psk_file": "/etc/braid/psk"]),
            .init("class", "standard"),
            // Commented out: a listed subscriber is an operator's decision, not a default.
            .init("subscriber", "cpe_0001", commentedOut: true),
            // Commented out: which services bypass the bond is the operator's decision.
            .init("rule", "bank_direct", commentedOut: true),
        ])

    public static func forRole(_ role: ConfigRole) -> ConfigTemplate {
        switch role {
        case .gateway: gateway
        case .concentrator: concentrator
        }
    }
}
