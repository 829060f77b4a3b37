import BraidCore
import Foundation
import XCTest

@testable import BraidDataPlane

/// Sysctls in a dictionary: the kernel a test can crash a daemon against.
final class FakeSysctls: SysctlAccess {
    var values: [String: String]
    var failWrites: Set<String> = []

    init(_ values: [String: String]) { self.values = values }

    func read(_ name: String) throws -> String {
        guard let v = values[name] else { throw SystemError("read sysctl \(name)", errno: ENOENT) }
        return v
    }

    func write(_ name: String, _ value: String) throws {
        if failWrites.contains(name) { throw SystemError("write sysctl \(name) = \(value)", errno: EACCES) }
        values[name] = value
    }
}

/// The state file that carries original kernel settings across a crash: its text, and a run that
/// is killed, a run after it and a clean stop against a dictionary of sysctls.
final class KernelStateTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/braid-state-test.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp", errno: errno) }
        directory = String(cString: made)
    }

    override func tearDown() {
        _ = try? TestFiles.removeTree(directory)
    }

    func testRecordTextRoundTrips() throws {
        var record = KernelStateRecord(role: "gateway")
        record.remember("net.mptcp.path_manager", original: "kernel")
        record.remember("net.ipv4.tcp_fastopen", original: "1")
        record.mptcpLimits = .init(subflows: 2, addAddrAccepted: 0)
        record.remember(tables: [101, 100, 101])
        XCTAssertEqual(record.tables, [100, 101])
        XCTAssertEqual(try KernelStateRecord(parsing: record.text), record)
        XCTAssertTrue(record.text.contains("sysctl net.mptcp.path_manager kernel\n"))
    }

    func testFirstOriginalWins() {
        var record = KernelStateRecord(role: "concentrator")
        XCTAssertTrue(record.remember("net.ipv4.tcp_fastopen", original: "0"))
        XCTAssertFalse(record.remember("net.ipv4.tcp_fastopen", original: "2"))
        XCTAssertEqual(record.original("net.ipv4.tcp_fastopen"), "0")
    }

    func testBadLinesNameLineAndText() {
        let cases: [(String, String)] = [
            (
                "role gateway\nsysctl net.ipv4.tcp_fastopen\n",
                "line 2: sysctl takes a dotted name and a value (sysctl net.ipv4.tcp_fastopen)"
            ),
            ("role gateway\nmptcp_limits 8 x\n", "line 2: mptcp_limits takes two numbers"),
            ("role gateway\n\ntable -1\n", "line 3: table takes a number, not 0 nor one of the kernel's tables 253-255 (table -1)"),
            ("role gateway\nroute 1\n", "line 2: unknown entry 'route' (route 1)"),
            ("sysctl net.ipv4.tcp_fastopen 1\n", "no role line"),
            // Written back to /proc/sys at stop: nothing braid does not change itself.
            ("role gateway\nsysctl kernel.core_pattern |/tmp/x\n", "line 2: not a setting braid changes"),
            ("role gateway\ntable 254\n", "line 2: table takes a number, not 0 nor one of the kernel's tables"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try KernelStateRecord(parsing: text), text) { error in
                XCTAssertTrue("\(error)".hasPrefix(message), "\(error)")
            }
        }
    }

    /// A run sets values and is killed; the next run finds the file, takes the originals from it
    /// (not the values the killed run left) and its clean stop gives them back.
    func testRunAfterACrashRestoresTheOriginals() throws {
        let kernel = FakeSysctls(["net.mptcp.path_manager": "kernel", "net.ipv4.tcp_fastopen": "0"])
        let path = KernelStateFile.path(directory: directory, role: "gateway")

        let first = try KernelStateFile(path: path, role: "gateway", sysctls: kernel)
        XCTAssertFalse(first.recovered)
        XCTAssertNotNil(try first.set("net.mptcp.path_manager", to: "userspace"))
        XCTAssertEqual(try KernelSettings.enableFastOpen(server: false, state: first)?.new, "1")
        try first.remember(tables: [100, 101])
        XCTAssertEqual(kernel.values, ["net.mptcp.path_manager": "userspace", "net.ipv4.tcp_fastopen": "1"])
        // SIGKILL: no restore; the file is what is left.

        let second = try KernelStateFile(path: path, role: "gateway", sysctls: kernel)
        XCTAssertTrue(second.recovered)
        XCTAssertEqual(second.record.original("net.mptcp.path_manager"), "kernel")
        XCTAssertEqual(second.record.tables, [100, 101])
        XCTAssertNil(try second.set("net.mptcp.path_manager", to: "userspace"))
        XCTAssertNil(try KernelSettings.enableFastOpen(server: false, state: second))
        XCTAssertTrue(second.restore().isEmpty)
        XCTAssertEqual(kernel.values, ["net.mptcp.path_manager": "kernel", "net.ipv4.tcp_fastopen": "0"])
        XCTAssertFalse(TestFiles.exists(path), "a clean stop removes the state file")
    }

    func testUnchangedSettingIsNotRecorded() throws {
        let kernel = FakeSysctls(["net.ipv4.tcp_fastopen": "3"])
        let path = KernelStateFile.path(directory: directory, role: "concentrator")
        let state = try KernelStateFile(path: path, role: "concentrator", sysctls: kernel)
        XCTAssertNil(try KernelSettings.enableFastOpen(server: true, state: state))
        XCTAssertFalse(TestFiles.exists(path), "nothing changed, nothing to write")
        XCTAssertTrue(state.restore().isEmpty)
        XCTAssertEqual(kernel.values["net.ipv4.tcp_fastopen"], "3")
    }

    func testLimitsOfTheKilledRunAreNotTakenForOriginals() throws {
        let path = KernelStateFile.path(directory: directory, role: "concentrator")
        let kernel = FakeSysctls([:])
        let first = try KernelStateFile(path: path, role: "concentrator", sysctls: kernel)
        XCTAssertEqual(try first.remember(limits: .init(subflows: 2, addAddrAccepted: 0)).subflows, 2)
        let second = try KernelStateFile(path: path, role: "concentrator", sysctls: kernel)
        XCTAssertEqual(try second.remember(limits: .init(subflows: 8, addAddrAccepted: 0)).subflows, 2)
    }

    func testFailedRestoreKeepsTheFile() throws {
        let kernel = FakeSysctls(["net.ipv4.tcp_fastopen": "0"])
        let path = KernelStateFile.path(directory: directory, role: "concentrator")
        let state = try KernelStateFile(path: path, role: "concentrator", sysctls: kernel)
        try KernelSettings.enableFastOpen(server: true, state: state)
        kernel.failWrites = ["net.ipv4.tcp_fastopen"]
        let failed = state.restore()
        XCTAssertEqual(failed.count, 1)
        XCTAssertTrue("\(failed[0])".contains("net.ipv4.tcp_fastopen = 0"), "\(failed[0])")
        XCTAssertTrue(TestFiles.exists(path), "kept for the next start")
    }

    func testUnreadableFileStopsTheStartNamingIt() throws {
        let path = KernelStateFile.path(directory: directory, role: "gateway")
        try TestFiles.write(path, "role gateway\nsysctl\n")
        XCTAssertThrowsError(try KernelStateFile(path: path, role: "gateway", sysctls: FakeSysctls([:]))) { error in
            XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("line 2"), "\(error)")
        }
    }

    /// A directory others may write to could hold a planted state file: refused, naming why.
    func testDirectoryOthersMayWriteToIsRefused() throws {
        chmod(directory, 0o1777)
        let path = KernelStateFile.path(directory: directory, role: "gateway")
        XCTAssertThrowsError(try KernelStateFile(path: path, role: "gateway", sysctls: FakeSysctls([:]))) { error in
            XCTAssertTrue("\(error)".contains("group or others may write to it (mode 1777)"), "\(error)")
        }
    }

    func testPathIsKeyedByRoleAndNetworkNamespace() {
        let path = KernelStateFile.path(directory: "/run/braid", role: "gateway")
        XCTAssertTrue(path.hasPrefix("/run/braid/gateway."), path)
        XCTAssertTrue(path.hasSuffix(".state"), path)
        XCTAssertNotEqual(path, "/run/braid/gateway.0.state")
        XCTAssertEqual(KernelStateFile.directory(of: "/run/braid/gateway.sock"), "/run/braid")
    }

    func testCapabilityNames() {
        XCTAssertEqual(Capabilities([.netAdmin, .netRaw]).description, "cap_net_admin,cap_net_raw")
        XCTAssertEqual(Capabilities([]).description, "none")
        XCTAssertEqual(Capabilities(rawValue: 1 << 63).description, "cap_63")
        XCTAssertEqual(Capabilities.sysResource.description, "cap_sys_resource")
    }
}

/// The few file operations the tests need.
enum TestFiles {
    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    static func write(_ path: String, _ text: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    static func removeTree(_ directory: String) throws {
        try FileManager.default.removeItem(atPath: directory)
    }
}
