import BraidStore
import XCTest

final class StoreSchemaTests: XCTestCase {
    /// Versions count up from 1 without gaps, so `pending(after:)` is a suffix in order.
    func testMigrationsAreNumberedInOrder() {
        XCTAssertEqual(StoreSchema.migrations.map(\.version), Array(1...StoreSchema.migrations.count))
        XCTAssertEqual(StoreSchema.latest, StoreSchema.migrations.count)
        for m in StoreSchema.migrations {
            XCTAssertFalse(m.statements.isEmpty)
            for s in m.statements {
                // One statement per query: a ';' would be a second one (the function body aside).
                XCTAssertFalse(s.replacingDollarQuoted.contains(";"), "\(m.version): \(s.prefix(60))")
            }
        }
    }

    func testPendingMigrations() throws {
        XCTAssertEqual(try StoreSchema.pending(after: 0).map(\.version), StoreSchema.migrations.map(\.version))
        XCTAssertEqual(try StoreSchema.pending(after: StoreSchema.latest).count, 0)
        XCTAssertThrowsError(try StoreSchema.pending(after: StoreSchema.latest + 1)) { error in
            XCTAssertTrue("\(error)".contains("newer than this braid's"), "\(error)")
        }
    }

    /// The tables are created before what refers to them, and the triggers after their function.
    func testFirstMigrationOrder() throws {
        let s = StoreSchema.migrations[0].statements
        func index(_ needle: String) -> Int { s.firstIndex { $0.contains(needle) } ?? -1 }
        XCTAssertLessThan(index("CREATE TABLE braid_class"), index("CREATE TABLE braid_subscriber"))
        XCTAssertLessThan(index("CREATE FUNCTION braid_notify_change"), index("CREATE TRIGGER braid_class_changed"))
        XCTAssertLessThan(index("CREATE TABLE braid_subscriber"), index("CREATE TRIGGER braid_subscriber_changed"))
        XCTAssertTrue(s.contains { $0.contains("pg_notify('\(StoreSchema.channel)'") })
    }
}

extension String {
    /// The text with `$$ … $$` bodies removed.
    fileprivate var replacingDollarQuoted: String {
        let parts = split(separator: "$$", omittingEmptySubsequences: false)
        return parts.enumerated().filter { $0.offset % 2 == 0 }.map { String($0.element) }.joined()
    }
}
