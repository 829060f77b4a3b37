import BraidHTTP
import Logging
import XCTest

@testable import BraidGateway

/// The status page's routes, called as the HTTP listener calls them: they answer with what the
/// control loop last published, and the page may fetch nothing but them.
final class StatusPageTests: XCTestCase {
    let page = StatusPage(logger: Logger(label: "test"))

    func text(_ path: String) -> String? {
        page.routes()[path].map { String(decoding: $0().body, as: UTF8.self) }
    }

    func testStatusJSONIsThePublishedDocument() {
        XCTAssertEqual(text("/status.json"), "{}")
        page.publish(document: #"{"role":"gateway","uplinks":[]}"#)
        XCTAssertEqual(text("/status.json"), #"{"role":"gateway","uplinks":[]}"#)
        XCTAssertEqual(page.routes()["/status.json"]?().contentType, "application/json")
    }

    func testHistoryFollowsTheSamples() {
        page.record(nanos: 0, counters: [("dsl", 0, 0)])
        page.record(nanos: 1_000_000_000, counters: [("dsl", 125, 0)])
        XCTAssertEqual(text("/history.json"), #"{"ages_ms":[0],"uplinks":[{"name":"dsl","tx_bps":[1000],"rx_bps":[0]}]}"#)
        page.record(nanos: 2_000_000_000, counters: [("dsl", 250, 0)])
        XCTAssertEqual(
            text("/history.json"), #"{"ages_ms":[1000,0],"uplinks":[{"name":"dsl","tx_bps":[1000,1000],"rx_bps":[0,0]}]}"#)
    }

    /// The page is one self-contained document: no `src=` or `href=` to load, and a policy that
    /// lets the browser fetch nothing but this listener.
    func testPageLoadsNothingElse() throws {
        let answer = try XCTUnwrap(page.routes()["/"]?())
        let html = String(decoding: answer.body, as: UTF8.self)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertFalse(html.contains("src="))
        XCTAssertFalse(html.contains("href="))
        let csp = answer.headers.first { $0.0 == "Content-Security-Policy" }?.1 ?? ""
        XCTAssertTrue(csp.hasPrefix("default-src 'none';"))
        XCTAssertTrue(csp.contains("connect-src 'self'"))
        XCTAssertEqual(Set(page.routes().keys), ["/", "/index.html", "/status.json", "/history.json"])
    }
}
