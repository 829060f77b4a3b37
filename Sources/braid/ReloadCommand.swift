import ArgumentParser
import BraidConfig
import BraidDataPlane

/// `braid reload`: asks a running daemon over its local socket to read its configuration file
/// again and apply what changed, and prints its answer. The same as SIGHUP, with the outcome.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Have the running daemon re-read its configuration and apply what changed, keeping sessions.",
        discussion: """
            Prints "reloaded: CHANGES" and exits 0, or prints every reason the daemon refused the file as \
            FILE:LINE: section.option: message (value) and exits 1; a refused reload leaves the running \
            configuration as it was.
            """)
    @Option(name: .long, help: "UCI package file, to find the daemon's status_socket.")
    var config: String = "/etc/config/braid"
    @Option(name: .long, help: "The daemon's local socket (default: the config's status_socket).")
    var socket: String?
    @Argument(help: "Role to reload: gateway or concentrator (default: the roles of the file's sections).")
    var role: String?

    func run() throws {
        var failed = false
        for path in try sockets() {
            let answer: ReloadAnswer
            do {
                let text = try LocalQueryServer.ask(path: path, question: "reload", timeoutSeconds: 30)
                answer = ReloadAnswer(text: text)
            } catch {
                FileHandleStderr.write("braid reload: \(error)\n")
                failed = true
                continue
            }
            switch answer {
            case .reloaded:
                print(answer.text)
            case .refused(let lines):
                FileHandleStderr.write(lines.map { $0 + "\n" }.joined())
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }

    /// The sockets to ask: the one given, else each role's status_socket in the file or its default.
    /// A file that does not parse (the broken file being reloaded) still names its roles' defaults.
    private func sockets() throws -> [String] {
        if let socket { return [socket] }
        var roles: [ConfigRole]
        if let text = role {
            guard let r = ConfigRole(rawValue: text) else {
                throw ValidationError("role must be gateway or concentrator (\(text))")
            }
            roles = [r]
        } else {
            roles = []
        }
        let package = try? BraidConfigReader.load(path: config)
        if roles.isEmpty, let package { roles = BraidConfigReader(package: package).roles }
        if roles.isEmpty { roles = [.gateway] }
        return roles.map { role in
            package?.sections(ofType: role.rawValue).first?.option("status_socket")?.values.last
                ?? ConfigSchema.braid.section(role.rawValue)?.option("status_socket")?.defaultValue
                ?? "/run/braid/\(role.rawValue).sock"
        }
    }
}
