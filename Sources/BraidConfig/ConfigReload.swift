/// The answer a running daemon gives to `braid reload` on its local socket, and how the command
/// reads it back: `reloaded: SUMMARY` on one line, or one `FILE:LINE: section.option: message (value)`
/// line per reason the reload was refused.
public enum ReloadAnswer: Equatable, Sendable {
    case reloaded(summary: String)
    case refused([String])

    static let prefix = "reloaded: "

    /// The text sent over the socket.
    public var text: String {
        switch self {
        case .reloaded(let summary): Self.prefix + summary
        case .refused(let lines): lines.joined(separator: "\n")
        }
    }

    /// Reads a daemon's answer; anything but a `reloaded:` line is a refusal.
    public init(text: String) {
        let trimmed = text.hasSuffix("\n") ? String(text.dropLast()) : text
        if trimmed.hasPrefix(Self.prefix) {
            self = .reloaded(summary: String(trimmed.dropFirst(Self.prefix.count)))
        } else {
            self = .refused(trimmed.split(separator: "\n", omittingEmptySubsequences: true).map(String.init))
        }
    }
}

extension BraidConfigReader {
    /// Reads the gateway configuration for a reload of a daemon running `running`: the new
    /// configuration and what changed. Throws `ConfigErrors` with every validation problem, or with
    /// one error per option that needs a restart, located at that option in this file.
    public mutating func gatewayReload(
        running: GatewayConfig
    ) throws -> (config: GatewayConfig, diff: GatewayConfigDiff) {
        let new = try gateway()
        let diff = GatewayConfigDiff(from: running, to: new)
        try refuse(diff.fixed, sectionType: "gateway")
        return (new, diff)
    }

    /// As `gatewayReload`, for the concentrator.
    public mutating func concentratorReload(
        running: ConcentratorConfig
    ) throws -> (config: ConcentratorConfig, diff: ConcentratorConfigDiff) {
        let new = try concentrator()
        let diff = ConcentratorConfigDiff(from: running, to: new)
        try refuse(diff.fixed, sectionType: "concentrator")
        return (new, diff)
    }

    /// `FILE:LINE: main.server: cannot change while running, restart to apply (OLD -> NEW)`, at the
    /// option's line when the file sets it, else at its section's (the value there is the default).
    private func refuse(_ fixed: [FixedOptionChange], sectionType: String) throws {
        guard !fixed.isEmpty, let section = package.sections(ofType: sectionType).first else { return }
        throw ConfigErrors(
            errors: fixed.map { change in
                ConfigError(
                    file: package.file, line: section.option(change.option)?.line ?? section.line,
                    section: section.label, option: change.option, "cannot change while running, restart to apply",
                    value: "\(change.old) -> \(change.new)")
            })
    }
}
