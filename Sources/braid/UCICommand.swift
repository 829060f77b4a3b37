import ArgumentParser
import BraidConfig

#if canImport(Glibc)
import Glibc
#endif

/// `braid uci`: takes uci's own argument syntax (`[-c DIR] [-P DIR] [-q] [-X] COMMAND [ARGS]`), so the
/// arguments are passed through untouched instead of being parsed here.
struct UCI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uci",
        abstract: "Show and change the configuration as OpenWrt's uci does (`braid uci help`).")

    @Argument(parsing: .captureForPassthrough, help: "uci's options, command and arguments.")
    var arguments: [String] = []

    func run() throws {
        let result = UCICommandLine.run(arguments)
        fputs(result.output, stdout)
        fflush(stdout)
        fputs(result.errors, stderr)
        if result.status != 0 { throw ExitCode(result.status) }
    }
}
