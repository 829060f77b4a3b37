import BraidConfig
@testable import BraidStore
import XCTest

final class SubscriberChangeTests: XCTestCase {
    let base = SubscriberDirectory(
        classes: [ServiceClass(name: "standard"), ServiceClass(name: "gold", rateDown: 100_000_000)],
        subscribers: [Subscriber(name: "cpe1", serviceClass: "standard")])

    func testRulesShared() throws {
        let d = try base.applying(.addSubscriber(Subscriber(name: "cpe2", serviceClass: "gold")))
        XCTAssertEqual(d.subscribers.map(\.name), ["cpe1", "cpe2"])
        let off = try d.applying(.setSubscriber(name: "cpe1", serviceClass: nil, enabled: false))
        XCTAssertEqual(off.subscribers.first?.enabled, false)
        XCTAssertEqual(off.subscribers.first?.serviceClass, "standard")
        for (change, problem) in [
            (SubscriberChange.addSubscriber(Subscriber(name: "cpe1", serviceClass: "gold")), "exists already"),
            (.addSubscriber(Subscriber(name: "cpe 3", serviceClass: "gold")), "letters, digits and '_' only"),
            (.addSubscriber(Subscriber(name: "cpe3", serviceClass: "bronze")), "no class 'bronze'"),
            (.setSubscriber(name: "nobody", serviceClass: nil, enabled: true), "no subscriber 'nobody'"),
            (.removeClass("standard"), "used by 1 subscriber"),
        ] {
            XCTAssertThrowsError(try base.applying(change)) { error in
                XCTAssertTrue("\(error)".contains(problem), "\(change): \(error)")
            }
        }
    }

    /// The uci store edits the file as `braid uci` would: sections and options, then a commit.
    func testUCIStoreEditsTheFile() throws {
        let files = MemoryUCIFiles([
            "/etc/config/braid": """
            config concentrator 'main'
            \toption psk_file '/etc/braid/psk'

            config class 'standard'

            """
        ])
        let store = UCISubscriberStore(path: "/etc/config/braid", files: files)
        try store.apply(.addClass(ServiceClass(name: "gold", rateDown: 50_000_000)))
        try store.apply(.addSubscriber(Subscriber(name: "cpe1", serviceClass: "gold")))
        try store.apply(.setSubscriber(name: "cpe1", serviceClass: nil, enabled: false))
        let d = try store.directory()
        XCTAssertEqual(d.classes.map(\.name), ["standard", "gold"])
        XCTAssertEqual(d.classes.last?.rateDown, 50_000_000)
        XCTAssertEqual(d.subscribers, [Subscriber(name: "cpe1", serviceClass: "gold", enabled: false)])
        let text = files.files["/etc/config/braid"] ?? ""
        XCTAssertTrue(text.contains("config subscriber 'cpe1'"), text)
        XCTAssertThrowsError(try store.apply(.addClass(ServiceClass(name: "cpe1")))) { error in
            XCTAssertTrue("\(error)".contains("exists already") || "\(error)".contains("is named 'cpe1'"), "\(error)")
        }
        try store.apply(.removeSubscriber("cpe1"))
        XCTAssertEqual(try store.directory().subscribers, [])
    }
}
