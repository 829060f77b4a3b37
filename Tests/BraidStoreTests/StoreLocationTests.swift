import BraidConfig
import XCTest

final class StoreLocationTests: XCTestCase {
    func testUCIAndURLs() throws {
        XCTAssertEqual(try StoreLocation("uci"), .uci)
        guard case .postgreSQL(let u) = try StoreLocation("postgresql://braid:s%40cret@db.example.net:6432/fleet") else {
            return XCTFail("not a PostgreSQL location")
        }
        XCTAssertEqual(u.user, "braid")
        XCTAssertEqual(u.password, "s@cret")
        XCTAssertEqual(u.host, "db.example.net")
        XCTAssertEqual(u.port, 6432)
        XCTAssertEqual(u.database, "fleet")
        XCTAssertEqual(u.tls, .prefer)
        XCTAssertFalse(u.isUnixSocket)
    }

    func testDefaultsAndUnixSocket() throws {
        let plain = try PostgreSQLURL("postgres://")
        XCTAssertEqual(plain.user, "postgres")
        XCTAssertEqual(plain.host, "localhost")
        XCTAssertEqual(plain.port, 5432)
        XCTAssertEqual(plain.database, "postgres")  // libpq: the database defaults to the user name
        let socket = try PostgreSQLURL("postgresql://braid@%2Frun%2Fpg:5433/braid?sslmode=disable")
        XCTAssertTrue(socket.isUnixSocket)
        XCTAssertEqual(socket.socketPath, "/run/pg/.s.PGSQL.5433")
        let query = try PostgreSQLURL("postgresql://braid@/braid?host=/tmp/pg&port=5444")
        XCTAssertEqual(query.socketPath, "/tmp/pg/.s.PGSQL.5444")
        let v6 = try PostgreSQLURL("postgresql://u@[2001:db8::5]:5000/d?sslmode=require")
        XCTAssertEqual(v6.host, "2001:db8::5")
        XCTAssertEqual(v6.port, 5000)
        XCTAssertEqual(v6.tls, .require)
    }

    func testDescriptionNeverShowsThePassword() throws {
        let u = try PostgreSQLURL("postgresql://braid:hunter2@db:5432/fleet")
        XCTAssertFalse(u.description.contains("hunter2"))
        XCTAssertTrue(u.description.contains("braid:***@db:5432/fleet"))
        XCTAssertEqual(
            StoreLocation.redacted("postgresql://braid:hunter2@db:99999/fleet"), "postgresql://braid:***@db:99999/fleet")
    }

    func testBadURLsNameTheProblem() {
        for (text, problem) in [
            ("mysql://x", "must be uci or a postgresql:// URL"),
            ("postgresql://u@h:0/d", "port must be 1-65535"),
            ("postgresql://u@h/d?sslmode=maybe", "sslmode must be"),
            ("postgresql://u@h/d?user=x", "unknown parameter user"),
            ("postgresql://u:%zz@h/d", "bad percent-encoding"),
            ("postgresql://u@%2Ftmp/d?sslmode=require", "sslmode=require over a Unix socket"),
        ] {
            XCTAssertThrowsError(try StoreLocation(text), text) { error in
                let message = (error as? ConfigSchema.ValueError)?.message ?? ""
                XCTAssertTrue(message.contains(problem), "\(text): \(message)")
            }
        }
    }

    /// The schema's errors quote the value, but not a password in it.
    func testCheckErrorHidesThePassword() throws {
        let text = """
            config concentrator 'main'
                option psk_file '/etc/braid/psk'
                option store 'postgresql://braid:hunter2@db:0/fleet'
            """
        let package = try UCIParser.parse(text, file: "/tmp/braid")
        let problems = BraidConfigReader(package: package).problems(for: .concentrator).map(\.description)
        XCTAssertEqual(problems.count, 1, "\(problems)")
        XCTAssertTrue(problems[0].contains("port must be 1-65535"), problems[0])
        XCTAssertFalse(problems[0].contains("hunter2"), problems[0])
    }

    func testAPostgreSQLStoreTakesNoSubscriberSections() throws {
        let text = """
            config concentrator 'main'
                option psk_file '/etc/braid/psk'
                option store 'postgresql://braid@db/fleet'
                option accounting_interval '5'
            config class 'standard'
            config subscriber 'cpe1'
                option class 'standard'
            """
        let package = try UCIParser.parse(text, file: "/tmp/braid")
        let problems = BraidConfigReader(package: package).problems(for: .concentrator).map(\.description)
        XCTAssertTrue(problems.contains { $0.contains("subscriber sections are not read with store") }, "\(problems)")
        XCTAssertTrue(problems.contains { $0.contains("class sections are not read with store") }, "\(problems)")
    }

    func testStoreOptionsRead() throws {
        let text = """
            config concentrator 'main'
                option psk_file '/etc/braid/psk'
                option store 'postgresql://braid@db/fleet'
                option store_password_file '/etc/braid/store-password'
                option accounting_interval '5'
            """
        var reader = BraidConfigReader(package: try UCIParser.parse(text, file: "/tmp/braid"))
        let c = try reader.concentrator()
        XCTAssertEqual(c.store, .postgreSQL(try PostgreSQLURL("postgresql://braid@db/fleet")))
        XCTAssertEqual(c.storePasswordFile, "/etc/braid/store-password")
        XCTAssertEqual(c.accountingInterval, 5)
    }
}
