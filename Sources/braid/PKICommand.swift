import ArgumentParser
import BraidTLS

#if canImport(Glibc)
import Glibc
#endif

/// `braid pki`: the operator's CA for the control channel's mutual TLS.
struct PKICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pki",
        abstract: "Certificates for the control channel: an operator CA, certificates, revocation.",
        discussion: """
            DIR holds ca.crt (option ca on both ends), ca.key (stays in DIR), crl.pem (option crl on \
            the concentrator), index, and issued/NAME.crt and issued/NAME.key (option cert and \
            option key). Keys are EC P-256, written with mode 0600.
            """,
        subcommands: [Init.self, Issue.self, Revoke.self, CRL.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an operator CA in DIR.")
        @Argument(help: "The CA directory (created with mode 0700).")
        var dir: String
        @Option(name: .long, help: "The CA certificate's common name.")
        var name: String = "braid operator CA"
        @Option(name: .long, help: "Validity of the CA certificate in days.")
        var days: Int = PKI.defaultCADays

        func run() throws {
            let pki = try pkiCommand { try PKI.initialize(directory: dir, commonName: name, days: days) }
            print("CA: \(pki.caCertificatePath)")
            print("CA key (keep it here): \(pki.caKeyPath)")
            print("CRL: \(pki.crlPath)")
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a certificate and key for each NAME, signed by the CA in DIR.",
            discussion: """
                Several names issue a batch in one run (a fleet's new gateways): one process, the CA \
                read once per certificate under its lock, instead of a process each.
                """)
        @Argument(help: "The CA directory.")
        var dir: String
        @Argument(help: "Subscriber ids of gateways, or the concentrator's name with --server.")
        var names: [String]
        @Flag(name: .long, help: "A concentrator certificate (serverAuth, NAME as its DNS name).")
        var server = false
        @Option(name: .long, help: "Validity in days.")
        var days: Int = PKI.defaultCertificateDays
        @Flag(name: .long, help: "Replace NAME's existing certificate and key.")
        var force = false
        @Option(
            name: .long,
            help: "An explicit validity window instead of --days: start, in seconds since 1970 (with --valid-until).")
        var validFrom: Int?
        @Option(name: .long, help: "End of the explicit validity window, in seconds since 1970.")
        var validUntil: Int?

        func validate() throws {
            if (validFrom == nil) != (validUntil == nil) {
                throw ValidationError("--valid-from and --valid-until go together")
            }
            guard !names.isEmpty else { throw ValidationError("missing NAME: whom to issue a certificate for") }
            // A gateway's common name is its 'config subscriber' section's name on the
            // concentrator, and uci section names are letters, digits and '_' only.
            for name in names where !server
                && name.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
            {
                throw ValidationError(
                    "invalid subscriber id (\(name)): it names a 'config subscriber' section, so letters, digits and '_' only")
            }
        }

        func run() throws {
            let pki = try pkiCommand { try PKI(directory: dir) }
            let usage: PKI.Usage = server ? .server : .client
            // In order; the first failure stops the batch, and what was issued before it stays.
            for name in names {
                let issued = try pkiCommand {
                    if let validFrom, let validUntil {
                        return try pki.issue(
                            name: name, usage: usage, notBefore: time_t(validFrom), notAfter: time_t(validUntil),
                            force: force)
                    }
                    return try pki.issue(name: name, usage: usage, days: days, force: force)
                }
                print("certificate: \(issued.certificatePath) (serial \(issued.serial))")
                print("key: \(issued.keyPath)")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke every certificate issued to NAME and re-sign the CRL.")
        @Argument(help: "The CA directory.")
        var dir: String
        @Argument(help: "The name the certificates were issued to.")
        var name: String
        @Option(name: .long, help: "Days until the CRL's nextUpdate.")
        var crlDays: Int = PKI.defaultCRLDays

        func run() throws {
            let pki = try pkiCommand { try PKI(directory: dir) }
            let serials = try pkiCommand { try pki.revoke(name: name, crlDays: crlDays) }
            for serial in serials { print("revoked: \(name) serial \(serial)") }
            if serials.isEmpty { print("\(name) was already revoked") }
            print("CRL: \(pki.crlPath) (copy it to the concentrator's option crl)")
        }
    }

    struct CRL: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "crl",
            abstract: "Re-sign the CRL with a new nextUpdate (the concentrator refuses all once it passes).")
        @Argument(help: "The CA directory.")
        var dir: String
        @Option(name: .long, help: "Days until the CRL's nextUpdate.")
        var days: Int = PKI.defaultCRLDays

        func run() throws {
            let pki = try pkiCommand { try PKI(directory: dir) }
            try pkiCommand { try pki.writeCRL(days: days) }
            print("CRL: \(pki.crlPath)")
        }
    }
}

/// Runs a PKI operation; a failure is one line on stderr and exit status 1.
private func pkiCommand<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as TLSError {
        FileHandleStderr.write("braid pki: \(error.detail)\n")
        throw ExitCode(1)
    }
}
