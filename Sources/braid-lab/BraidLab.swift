import ArgumentParser

/// braid-lab: native traffic endpoints and a TUN delay line for braid's namespace lab and benchmarks.
///
/// It replaces tests/netns/braid-traffic.py where that tool runs out of steam (one thread, os.urandom
/// and hashlib cap it near 3 Gbit/s) and stands in for netem, which the lab kernel does not have.
/// Every client subcommand prints exactly one JSON line on stdout; diagnostics go to stderr.
@main
struct BraidLab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "braid-lab",
        abstract: "Traffic endpoints and a delay line for braid's lab and benchmarks.",
        subcommands: [
            Serve.self, Get.self, Put.self, Rate.self, Hold.self, TimeToFirstByte.self, Delay.self, Fleet.self,
        ]
    )
}

extension VerifyMode: ExpressibleByArgument {}

/// The server a client subcommand talks to.
struct TargetOptions: ParsableArguments {
    @Option(help: "Server address (numeric IPv4 or IPv6).")
    var connect: String

    @Option(help: "Server port.")
    var port: Int

    @Flag(help: "Connect with IPPROTO_MPTCP.")
    var mptcp = false

    func validate() throws {
        try validatePort(port)
        _ = try address()
    }

    func address() throws -> SocketAddress {
        do {
            return try SocketAddress(host: connect, port: port)
        } catch let error as LabError {
            throw ValidationError("--connect: \(error.description)")
        }
    }
}

func validatePort(_ port: Int) throws {
    guard (1...65535).contains(port) else { throw ValidationError("--port: \(port) is not a port (1-65535)") }
}

func validatePositive(_ value: Double, _ option: String) throws {
    guard value > 0, value.isFinite else { throw ValidationError("\(option): \(value) must be a positive number") }
}

func validateAtLeast(_ value: Int, _ minimum: Int, _ option: String) throws {
    guard value >= minimum else { throw ValidationError("\(option): \(value) must be at least \(minimum)") }
}
