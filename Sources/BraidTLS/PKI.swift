import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

/// The operator's certificate authority: a directory that `braid pki` creates and keeps.
///
/// ```
/// DIR/ca.crt            the CA certificate (PEM, 0644): `option ca` on both ends
/// DIR/ca.key            the CA's private key (PEM, 0600): stays here, never on a gateway
/// DIR/crl.pem           the CA's revocation list (PEM, 0644): `option crl` on the concentrator
/// DIR/index             one line per certificate issued: status, serial, notAfter, revocation, name
/// DIR/issued/NAME.crt   a certificate issued to NAME (PEM, 0644): `option cert`
/// DIR/issued/NAME.key   its private key (PEM, 0600): `option key`
/// ```
///
/// Keys are EC P-256, signatures ECDSA with SHA-256: every TLS 1.3 stack supports them, and
/// OpenSSL 3.0 does so in every build. Private keys are created with O_EXCL and mode 0600, so an
/// existing key is never overwritten unless asked (`force`) and never readable by others, not
/// even for an instant.
public struct PKI: Sendable {
    /// The directory holding the CA.
    public let directory: String

    public var caCertificatePath: String { directory + "/ca.crt" }
    public var caKeyPath: String { directory + "/ca.key" }
    public var crlPath: String { directory + "/crl.pem" }
    public var indexPath: String { directory + "/index" }
    public var issuedDirectory: String { directory + "/issued" }

    /// Where NAME's certificate lives.
    public func certificatePath(for name: String) -> String { issuedDirectory + "/\(name).crt" }
    /// Where NAME's private key lives.
    public func keyPath(for name: String) -> String { issuedDirectory + "/\(name).key" }

    /// Opens an existing CA directory; throws when it holds no CA.
    public init(directory: String) throws {
        self.directory = directory
        guard access(caCertificatePath, F_OK) == 0, access(caKeyPath, F_OK) == 0 else {
            throw TLSError(
                .pki, "\(directory) holds no CA (no ca.crt and ca.key): run `braid pki init \(directory)` first")
        }
    }

    init(uncheckedDirectory directory: String) {
        self.directory = directory
    }

    /// Default lifetimes, in days.
    public static let defaultCADays = 3650
    public static let defaultCertificateDays = 825
    /// A CRL past its nextUpdate makes the concentrator refuse every gateway, so the default is
    /// long; `braid pki crl` re-signs it.
    public static let defaultCRLDays = 90

    /// Certificates start an hour in the past so that a peer whose clock is a little behind does
    /// not refuse a certificate issued a moment ago.
    static let backdate: time_t = 3600

    /// NAME becomes the certificate's CN, a DNS name for servers and a file name here, so it is
    /// limited to what is safe in all three: letters, digits, '.', '-', '_', at most 64
    /// characters (the CN's upper bound), starting with a letter or digit.
    public static func validate(name: String) throws {
        let bytes = Array(name.utf8)
        func allowed(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
        }
        guard !bytes.isEmpty, bytes.count <= 64, bytes.allSatisfy(allowed),
            let first = bytes.first, allowed(first), first != UInt8(ascii: "."), first != UInt8(ascii: "-"),
            first != UInt8(ascii: "_"), !name.contains("..")
        else {
            throw TLSError(
                .pki, "invalid name (\(name)): 1 to 64 letters, digits, '.', '-', '_', starting with a letter or digit")
        }
    }
}

// MARK: - The index

extension PKI {
    /// One certificate issued by this CA, as the index records it.
    public struct IndexEntry: Equatable, Sendable {
        public var serial: String
        public var name: String
        public var notAfter: Int64
        /// When it was revoked (seconds since 1970), nil while valid.
        public var revokedAt: Int64?
    }

    static let indexHeader = """
        # braid pki index: status (V valid, R revoked), serial (hex), notAfter, revokedAt (seconds \
        since 1970 UTC), name

        """

    /// Every certificate this CA issued, oldest first.
    public func readIndex() throws -> [IndexEntry] {
        guard let text = try readTextFile(indexPath, missingOK: true) else { return [] }
        var entries: [IndexEntry] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: " ")
            guard fields.count == 5, fields[0] == "V" || fields[0] == "R", let notAfter = Int64(fields[2]),
                fields[0] == "V" ? fields[3] == "-" : Int64(fields[3]) != nil
            else {
                throw TLSError(.pki, "\(indexPath):\(number + 1): malformed line (\(line))")
            }
            entries.append(
                IndexEntry(
                    serial: String(fields[1]), name: String(fields[4]), notAfter: notAfter,
                    revokedAt: fields[0] == "R" ? Int64(fields[3]) : nil))
        }
        return entries
    }

    func writeIndex(_ entries: [IndexEntry]) throws {
        var text = PKI.indexHeader
        for e in entries {
            let revoked = e.revokedAt.map(String.init) ?? "-"
            text += "\(e.revokedAt == nil ? "V" : "R") \(e.serial) \(e.notAfter) \(revoked) \(e.name)\n"
        }
        try writeFile(indexPath, Array(text.utf8), mode: 0o644, replace: true)
    }
}

// MARK: - Files

/// Writes a whole file. Without `replace` the file must not exist (O_EXCL); with it the bytes go
/// to a temporary file beside it that is renamed over the old one, so a reader never sees half a
/// key or half a CRL. The mode is set on the open descriptor before any byte is written.
func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t, replace: Bool) throws {
    let target = replace ? "\(path).tmp.\(getpid())" : path
    if replace { unlink(target) }
    let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    if fd < 0 {
        let e = errno
        if e == EEXIST {
            throw TLSError(.pki, "\(path) already exists: refusing to overwrite it")
        }
        throw TLSError(.pki, "cannot create \(target): \(String(cString: strerror(e)))")
    }
    var ok = fchmod(fd, mode) == 0
    var offset = 0
    while ok && offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { ok = false } else { offset += n }
    }
    let e = errno
    ok = ok && fsync(fd) == 0
    close(fd)
    if !ok {
        unlink(target)
        throw TLSError(.pki, "cannot write \(target): \(String(cString: strerror(e)))")
    }
    if replace && rename(target, path) != 0 {
        let e = errno
        unlink(target)
        throw TLSError(.pki, "cannot rename \(target) to \(path): \(String(cString: strerror(e)))")
    }
}

/// A UTC date for messages: 2027-02-20 01:41:09 UTC.
func utcDate(_ seconds: Int64) -> String {
    var t = time_t(seconds)
    var parts = tm()
    gmtime_r(&t, &parts)
    var buf = [CChar](repeating: 0, count: 32)
    strftime(&buf, buf.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
    return String(cString: buf)
}

extension PKI {
    /// Holds DIR/.lock (flock) while `body` reads and rewrites the index, so two `braid pki`
    /// runs at once cannot lose a certificate from the index or a revocation from the CRL.
    func locked<T>(_ body: () throws -> T) throws -> T {
        let path = directory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TLSError(.pki, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw TLSError(.pki, "cannot lock \(path): \(String(cString: strerror(errno)))") }
        }
        return try body()
    }
}

func readTextFile(_ path: String, missingOK: Bool) throws -> String? {
    guard let f = fopen(path, "r") else {
        if missingOK && errno == ENOENT { return nil }
        throw TLSError(.pki, "cannot read \(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n == 0 { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func makeDirectory(_ path: String, mode: mode_t) throws {
    if mkdir(path, mode) != 0 && errno != EEXIST {
        throw TLSError(.pki, "cannot create directory \(path): \(String(cString: strerror(errno)))")
    }
}
