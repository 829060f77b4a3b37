import XCTest

@testable import BraidStatus

final class StatusDocumentTests: XCTestCase {
    static let uplink = UplinkStatus(
        name: "dsl", device: "pppoe-wan", role: "active", state: "up", since: 1_700_000_000.5, carrier: true,
        addresses: ["198.18.1.2", "2001:db8:1::2"], rttMs: 12.34, loss: 0.01, subflows: 2, mptcp: "ok",
        txBytes: 1000, rxBytes: 2000, family: "ipv4")

    /// The gateway document as scripts, the status page and the namespace tests have always read it:
    /// same names, same nesting, nulls written out; `bytes` and `time` added at the end.
    func testGatewayDocumentKeepsItsShape() throws {
        var down = Self.uplink
        down.name = "lte"
        down.state = "unknown"
        down.rttMs = nil
        down.loss = nil
        down.mptcp = "failing: reset"
        down.family = nil
        let doc = GatewayStatus(
            concentrator: "198.18.10.2:4800", sessions: SessionCount(active: 1, total: 5),
            control: GatewayControlStatus(state: "down", key: nil, serviceClass: nil, error: "connect: \"refused\""),
            uplinks: [Self.uplink, down], bytes: ByteCount(up: 10, down: 20), time: 1_700_000_100.25,
            concentratorAddresses: ["198.18.10.2", "2001:db8:10::2"])
        XCTAssertEqual(
            try JSONText.encode(doc),
            #"{"role":"gateway","concentrator":"198.18.10.2:4800","#
                + #""concentrator_addresses":["198.18.10.2","2001:db8:10::2"],"sessions":{"active":1,"total":5},"#
                + #""control":{"state":"down","key":null,"class":null,"error":"connect: \"refused\""},"uplinks":["#
                + #"{"name":"dsl","device":"pppoe-wan","role":"active","state":"up","since":1700000000.5,"#
                + #""carrier":true,"addresses":["198.18.1.2","2001:db8:1::2"],"family":"ipv4","rtt_ms":12.34,"loss":0.01,"#
                + #""subflows":2,"mptcp":"ok","tx_bytes":1000,"rx_bytes":2000,"#
                + #""share":null,"share_cap":null,"overflow":null},"#
                + #"{"name":"lte","device":"pppoe-wan","role":"active","state":"unknown","since":1700000000.5,"#
                + #""carrier":true,"addresses":["198.18.1.2","2001:db8:1::2"],"family":null,"rtt_ms":null,"loss":null,"#
                + #""subflows":2,"mptcp":"failing: reset","tx_bytes":1000,"rx_bytes":2000,"#
                + #""share":null,"share_cap":null,"overflow":null}],"#
                + #""bytes":{"up":10,"down":20},"time":1700000100.25}"#)
        XCTAssertEqual(try JSONText.decode(GatewayStatus.self, from: JSONText.encode(doc)), doc)
    }

    func testControlOffIsItsStateAlone() throws {
        XCTAssertEqual(try JSONText.encode(GatewayControlStatus(state: "off")), #"{"state":"off"}"#)
        XCTAssertEqual(
            try JSONText.encode(GatewayControlStatus(state: "up", key: 7, serviceClass: "gold")),
            #"{"state":"up","key":7,"class":"gold"}"#)
    }

    /// A document from a gateway before `bytes` and `time` existed still reads.
    func testOlderGatewayDocumentReads() throws {
        let old =
            #"{"role":"gateway","concentrator":"198.18.10.2:4800","sessions":{"active":0,"total":0},"#
            + #""control":{"state":"off"},"uplinks":[]}"#
        let doc = try JSONText.decode(GatewayStatus.self, from: old)
        XCTAssertNil(doc.bytes)
        XCTAssertEqual(doc.control.state, "off")
    }

    func testConcentratorDocumentShape() throws {
        let doc = ConcentratorStatus(
            listen: "[::]:4800", denyDest: ["198.18.0.0/15"], allowDest: [], denyPort: ["25"], allowPort: [],
            time: 1_700_000_000, sessions: SessionCount(active: 2, total: 9), bytes: ByteCount(up: 5, down: 6),
            controlChannels: 1,
            subscribers: [
                SubscriberStatus(
                    name: "cpe_0001", serviceClass: "standard", config: "enabled",
                    control: SubscriberControlStatus(
                        state: "up", since: 1_699_999_990, key: 42, from: "198.18.1.2:40000", channels: 1),
                    sessions: 2, bytes: ByteCount(up: 5, down: 6), rateBps: ByteRate(up: 8, down: 16)),
                SubscriberStatus(
                    name: "pre-shared key", serviceClass: nil, config: "disabled",
                    control: SubscriberControlStatus(state: "none"), sessions: 0, bytes: ByteCount(up: 0, down: 0),
                    rateBps: ByteRate(up: 0, down: 0)),
            ],
            refusals: [RefusalCount(listener: "data", reason: "bad_mac", count: 3)])
        let text = try JSONText.encode(doc)
        XCTAssertEqual(
            text,
            #"{"role":"concentrator","listen":"[::]:4800","deny_dest":["198.18.0.0/15"],"allow_dest":[],"#
                + #""deny_port":["25"],"allow_port":[],"time":1700000000.0,"sessions":{"active":2,"total":9},"#
                + #""bytes":{"up":5,"down":6},"control_channels":1,"subscribers":["#
                + #"{"name":"cpe_0001","class":"standard","config":"enabled","control":{"state":"up","#
                + #""since":1699999990.0,"key":42,"from":"198.18.1.2:40000","channels":1},"sessions":2,"#
                + #""bytes":{"up":5,"down":6},"rate_bps":{"up":8.0,"down":16.0}},"#
                + #"{"name":"pre-shared key","class":null,"config":"disabled","control":{"state":"none","#
                + #""since":null,"key":null,"from":null,"channels":0},"sessions":0,"bytes":{"up":0,"down":0},"#
                + #""rate_bps":{"up":0.0,"down":0.0}}],"refusals":[{"listener":"data","reason":"bad_mac","count":3}]}"#)
        XCTAssertEqual(try JSONText.decode(ConcentratorStatus.self, from: text), doc)
    }
}
