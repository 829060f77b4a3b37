import XCTest

@testable import BraidStatus

/// An uplink's data cap in the status document: present with its typed fields when the uplink has
/// a cap, left out when it has none (older readers see the document they know).
final class QuotaStatusTests: XCTestCase {
    func testQuotaIsWrittenOnlyForACappedUplinkAndReadsBack() throws {
        var lte = StatusDocumentTests.uplink
        XCTAssertFalse(try JSONText.encode(lte).contains("quota"))
        lte.quota = UplinkQuotaStatus(
            used: 20_100_000_000, cap: 20_000_000_000, period: "month", resetsAt: 1_796_428_800,
            resetsOn: "2026-12-05", state: "reached", action: "off")
        let text = try JSONText.encode(lte)
        XCTAssertTrue(
            text.hasSuffix(
                #""share":null,"share_cap":null,"overflow":null,"quota":{"used":20100000000,"cap":20000000000,"period":"month","#
                    + #""resets_at":1796428800,"resets_on":"2026-12-05","state":"reached","action":"off"}}"#),
            text)
        XCTAssertEqual(try JSONText.decode(UplinkStatus.self, from: text), lte)
    }
}
