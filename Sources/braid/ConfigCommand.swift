import ArgumentParser
import BraidConfig

/// `braid config`: what the configuration schema renders, so `Config/` and `docs/` are never written by hand.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Print the default package of a role or the configuration reference.",
        subcommands: [Defaults.self, Docs.self])

    struct Defaults: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a role's default package, every option commented (Config/ROLE.conf).")
        @Argument(help: "gateway or concentrator.")
        var role: String

        func run() throws {
            guard let r = ConfigRole(rawValue: role) else {
                throw ValidationError("role must be gateway or concentrator (\(role))")
            }
            print(ConfigSchema.braid.render(.forRole(r)), terminator: "")
        }
    }

    struct Docs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the reference of every section and option (docs/configuration.md).")

        func run() throws {
            print(ConfigSchema.braid.renderMarkdown(), terminator: "")
        }
    }
}
