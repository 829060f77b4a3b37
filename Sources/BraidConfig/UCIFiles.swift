import BraidCore
import Glibc

/// The file operations `braid uci` needs, and nothing else: the commands are written against this
/// so that everything above it is plain computation.
public protocol UCIFileSystem {
    /// The file's text, or nil when there is no regular file at the path.
    func read(_ path: String) throws -> String?
    /// Names of the regular files in a directory, sorted; nil when the directory cannot be read.
    func list(_ directory: String) -> [String]?
    /// Appends to a file, creating it (mode 0600) and its directory (mode 0700) if needed.
    func append(_ path: String, _ text: String) throws
    /// Replaces a file's contents in place (save files are rewritten this way by uci too).
    func replace(_ path: String, _ text: String) throws
    /// Replaces a file atomically: a temporary file next to it, synced, then renamed over it,
    /// keeping the old file's mode (0600 for a new file).
    func replaceAtomically(_ path: String, _ text: String) throws
    /// Standard input, or the named file (`-f FILE`).
    func readInput(_ path: String?) throws -> String
    /// Refuses a save or delta directory that is not the user's own: a symbolic link, not a
    /// directory, owned by another user, or writable by group or others. A missing one is fine
    /// (it is made with mode 0700 when a change is saved).
    func checkPrivateDirectory(_ path: String) throws
}

/// The real file system, through the C library.
public struct UCILocalFiles: UCIFileSystem {
    public init() {}

    public func read(_ path: String) throws -> String? {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        guard let f = fopen(path, "r") else { throw UCIError.io }
        defer { fclose(f) }
        return try Self.readAll(f)
    }

    static func readAll(_ f: UnsafeMutablePointer<FILE>) throws -> String {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n > 0 { data += chunk[0..<n] }
            if n < chunk.count {
                if ferror(f) != 0 { throw UCIError.io }
                break
            }
        }
        return String(decoding: data, as: UTF8.self)
    }

    public func list(_ directory: String) -> [String]? {
        guard let dir = opendir(directory) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            var st = stat()
            if name.hasPrefix(".") || stat(directory + "/" + name, &st) != 0 || st.st_mode & S_IFMT != S_IFREG {
                continue
            }
            names.append(name)
        }
        return names.sorted()
    }

    // Save files only: their directory is checked to be the user's own, and the file itself is
    // never opened through a symbolic link (root's `commit` would otherwise truncate the target).
    public func append(_ path: String, _ text: String) throws {
        try makeParent(of: path)
        try write(path, text, flags: O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW)
    }

    public func replace(_ path: String, _ text: String) throws {
        try makeParent(of: path)
        try write(path, text, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW)
    }

    public func checkPrivateDirectory(_ path: String) throws {
        if let reason = privateDirectoryProblem(path) { throw UCIError.unsafeDirectory(path: path, reason: reason) }
    }

    public func replaceAtomically(_ path: String, _ text: String) throws {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var template = Array("\(dir)/.\(base).uci-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw UCIError.io }
        let temporary = String(cString: template)
        var ok = Self.writeAll(fd, text) && fsync(fd) == 0
        var st = stat()
        let mode = stat(path, &st) == 0 ? st.st_mode & 0o7777 : 0o600
        ok = ok && fchmod(fd, mode) == 0
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw UCIError.io
        }
    }

    public func readInput(_ path: String?) throws -> String {
        guard let path else { return try Self.readAll(stdin) }
        guard let f = fopen(path, "r") else { throw UCIError.cannotOpen(String(cString: strerror(errno))) }
        defer { fclose(f) }
        return try Self.readAll(f)
    }

    /// Makes the save directory (mode 0700) unless it exists, and checks it either way: one that
    /// appeared between the check and mkdir is checked as well.
    func makeParent(of path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let dir = String(path[..<slash])
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw UCIError.io }
        try checkPrivateDirectory(dir)
    }

    func write(_ path: String, _ text: String, flags: Int32) throws {
        let fd = open(path, flags | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw UCIError.io }
        defer { close(fd) }
        guard Self.writeAll(fd, text) else { throw UCIError.io }
    }

    static func writeAll(_ fd: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }
}
