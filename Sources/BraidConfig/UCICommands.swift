/// What one `braid uci` run printed, and its exit status.
public struct UCIResult: Equatable, Sendable {
    public var output = ""
    public var errors = ""
    public var status: Int32 = 0
}

/// `braid uci`: OpenWrt's uci command line — the same arguments, output, messages and exit codes —
/// over the package files in a configuration directory (`-c`, default `/etc/config`; a file of
/// the same name in the override directory, `-C`, default `/var/run/uci`, is used instead) and the
/// changes staged in a save directory (`-t`, default `/tmp/.uci`) until `commit`.
///
/// Everything here is computation over `UCIFileSystem`; the file system is the only I/O.
public struct UCICommandLine {
    /// uci's usage text, word for word (its `-n` line says "default" although `-N` is; scripts
    /// and people comparing the two see the same), naming the program as it was called.
    public static func usage(program: String) -> String {
        """
        Usage: \(program) [<options>] <command> [<arguments>]

        Commands:
        \tbatch
        \texport     [<config>]
        \timport     [<config>]
        \tchanges    [<config>]
        \tcommit     [<config>]
        \tadd        <config> <section-type>
        \tadd_list   <config>.<section>.<option>=<string>
        \tdel_list   <config>.<section>.<option>=<string>
        \tshow       [<config>[.<section>[.<option>]]]
        \tget        <config>.<section>[.<option>]
        \tset        <config>.<section>[.<option>]=<value>
        \tdelete     <config>[.<section>[[.<option>][=<id>]]]
        \trename     <config>.<section>[.<option>]=<name>
        \trevert     <config>[.<section>[.<option>]]
        \treorder    <config>.<section>=<position>

        Options:
        \t-c <path>  set the search path for config files (default: /etc/config)
        \t-C <path>  set the search path for config override files (default: /var/run/uci)
        \t-d <str>   set the delimiter for list values in uci show
        \t-f <file>  use <file> as input instead of stdin
        \t-m         when importing, merge data into an existing package
        \t-n         name unnamed sections on export (default)
        \t-N         don't name unnamed sections
        \t-p <path>  add a search path for config change files
        \t-P <path>  add a search path for config change files and use as default
        \t-t <path>  set save path for config change files
        \t-q         quiet mode (don't print error messages)
        \t-s         force strict mode (stop on parser errors, default)
        \t-S         disable strict mode
        \t-X         do not use extended syntax on 'show'


        """
    }

    /// The most words one line of `batch` input may hold (uci's MAX_ARGS).
    static let batchWords = 4

    var confDir: String
    var overrideDir: String
    var saveDir: String
    /// Directories whose staged changes are read (and committed) before the save directory's.
    var deltaPaths: [String] = []
    var delimiter = " "
    /// Standard input as given by the caller (tests); read from the process when nil.
    let standardInput: String?
    /// The text of `-f FILE`, read when the option is seen (as uci opens it then).
    var inputText: String?
    var quiet = false
    var merge = false
    var noCommit = false
    var strict = true
    var showExtended = true
    var nameAnonymous = false
    let program: String
    let files: UCIFileSystem
    var result = UCIResult()
    /// Inside `batch`: its input (which `import` reads on from), and whether the current command
    /// loaded a package (uci then starts counting input lines afresh).
    var batchInput: UCITextParser?
    var loadedPackage = false

    init(
        files: UCIFileSystem, confDir: String, overrideDir: String, saveDir: String, program: String,
        standardInput: String?
    ) {
        self.files = files
        self.confDir = confDir
        self.overrideDir = overrideDir
        self.saveDir = saveDir
        self.program = program
        self.standardInput = standardInput
    }

    /// Runs one command line (the arguments after `uci`). `program` is how the usage names the
    /// command (uci prints its argv[0]); `standardInput` stands in for the process's own.
    public static func run(
        _ arguments: [String], files: UCIFileSystem = UCILocalFiles(), confDir: String = "/etc/config",
        overrideDir: String = "/var/run/uci", saveDir: String = "/tmp/.uci", program: String = "braid uci",
        standardInput: String? = nil
    ) -> UCIResult {
        var cli = UCICommandLine(
            files: files, confDir: confDir, overrideDir: overrideDir, saveDir: saveDir, program: program,
            standardInput: standardInput)
        let status = cli.main(arguments)
        if status == 255 { cli.result.errors += usage(program: program) }
        cli.result.status = status
        return cli.result
    }

    // MARK: Arguments

    mutating func main(_ args: [String]) -> Int32 {
        // Options come before the command, as getopt(3) in OpenWrt's C library takes them.
        var i = 0
        while i < args.count, args[i].hasPrefix("-"), args[i] != "-" {
            if args[i] == "--" {
                i += 1
                break
            }
            let flags = Array(args[i].dropFirst())
            var j = 0
            while j < flags.count {
                let flag = flags[j]
                if "cCdfpPt".contains(flag) {
                    var value = String(flags[(j + 1)...])
                    if value.isEmpty {
                        guard i + 1 < args.count else {
                            result.errors += "uci: option requires an argument: \(flag)\n"
                            result.errors += Self.usage(program: program)
                            return 0
                        }
                        i += 1
                        value = args[i]
                    }
                    switch flag {
                    case "c": confDir = value
                    case "C": overrideDir = value
                    case "d": delimiter = value
                    case "f":
                        if inputText != nil {
                            error("Too many input files.\n")
                            return 1
                        }
                        do {
                            inputText = try files.readInput(value)
                        } catch {
                            // uci prints strerror(3) after "uci: ", and no line break.
                            self.error("uci: \((error as? UCIError)?.message ?? "I/O error")")
                            return 1
                        }
                    case "p":
                        // A directory given twice is refused by uci (and the refusal ignored).
                        if !deltaPaths.contains(value) && value != saveDir { deltaPaths.append(value) }
                    case "t": setSaveDir(value)
                    default:
                        // -P: as -t, and commit does nothing: uci's way of keeping runtime state.
                        setSaveDir(value)
                        noCommit = true
                    }
                    break
                }
                switch flag {
                case "m": merge = true
                case "n": nameAnonymous = true
                case "N": nameAnonymous = false
                case "s": strict = true
                case "S": strict = false
                case "q": quiet = true
                case "X": showExtended = false
                default:
                    if flag != "L" { result.errors += "uci: unrecognized option: \(flag)\n" }
                    result.errors += Self.usage(program: program)
                    return 0
                }
                j += 1
            }
            i += 1
        }
        let command = Array(args[i...])
        guard !command.isEmpty else {
            result.errors += Self.usage(program: program)
            return 0
        }
        // Staged changes are read from these directories and committed: they must be the user's.
        do {
            for dir in deltaPaths + [saveDir] { try files.checkPrivateDirectory(dir) }
        } catch {
            report(error)
            return (error as? UCIError)?.code ?? 1
        }
        return dispatch(command)
    }

    /// uci_set_savedir: the new save directory goes last among the directories changes are read
    /// from, and the previous one stays among them.
    mutating func setSaveDir(_ dir: String) {
        deltaPaths.append(saveDir)
        deltaPaths.removeAll { $0 == dir }
        saveDir = dir
    }

    /// One command with its arguments; 255 for an unknown one or a wrong count (usage follows).
    mutating func dispatch(_ command: [String]) -> Int32 {
        switch command[0].lowercased() {
        case "batch" where batchInput == nil: return batch()
        case "show", "changes", "export", "commit": return packageCommand(command[0].lowercased(), command)
        case "get", "set", "add_list", "del_list", "del", "delete", "ren", "rename", "revert", "reorder":
            return sectionCommand(command[0].lowercased(), command)
        case "add": return add(command)
        case "import": return importCommand(command)
        case "help":
            result.errors += Self.usage(program: program)
            return 0
        default: return 255
        }
    }

    /// `batch`: commands one a line from standard input or `-f FILE`, read with uci's grammar (so
    /// a quoted value may span lines), each run as its own `uci` command with the same options.
    /// Errors are reported and the next line is read; `exit` ends early; the status is always 0.
    mutating func batch() -> Int32 {
        let text: String
        do {
            text = try inputText ?? standardInput ?? files.readInput(nil)
        } catch {
            report(error)
            return 1
        }
        batchInput = UCITextParser(text: text, strict: true, importing: false)
        defer { batchInput = nil }
        while let line = batchInput?.nextCommand(limit: Self.batchWords) {
            switch line {
            case .failed(let e): error("uci: \(e.description)\n")
            case .tooManyArguments: error("Too many arguments\n")
            case .command(let words):
                guard let first = words.first else { continue }
                if first.lowercased() == "exit" { return 0 }
                loadedPackage = false
                if dispatch(words) == 255 { error("Unknown command\n") }
                if loadedPackage { batchInput?.restartLineCount() }
            }
        }
        return 0
    }

    mutating func error(_ text: String) {
        if !quiet { result.errors += text }
    }

    mutating func report(_ e: Error) {
        error("uci: \((e as? UCIError ?? .io).message)\n")
    }

    // MARK: Loading

    struct Loaded {
        var document: UCIDocument
        /// Every staged change that parsed, applicable or not: what `changes` lists.
        var staged: [UCIDelta]
    }

    /// The package's file: the override directory's if it has one (uci_file_load), else the
    /// configuration directory's. `commit` writes where the package was read from.
    func configPath(_ package: String) -> String {
        let override = overrideDir + "/" + package
        if (try? files.read(override)) ?? nil != nil { return override }
        return confDir + "/" + package
    }

    func savePath(_ package: String) -> String { saveDir + "/" + package }

    /// The package as uci loads it: the file, then the changes staged for it.
    mutating func load(_ package: String) throws -> Loaded {
        guard UCINames.isValidPackage(package) else { throw UCIError.notFound }
        loadedPackage = true
        guard let text = try files.read(configPath(package)) else { throw UCIError.notFound }
        var document = try parseFile(text, package: package)
        var staged: [UCIDelta] = []
        for dir in deltaPaths + [saveDir] {
            guard let saved = try files.read(dir + "/" + package) else { continue }
            for delta in UCIDelta.parseFile(saved, package: package) {
                staged.append(delta)
                document.apply(delta)
            }
        }
        return Loaded(document: document, staged: staged)
    }

    mutating func parseFile(_ text: String, package: String) throws -> UCIDocument {
        var warnings: [UCIParseError] = []
        do {
            let document = try UCIDocument.parse(text, package: package, strict: strict, warnings: &warnings)
            // Without strict mode uci prints each skipped line's error, quiet or not.
            for w in warnings { result.errors += w.description + "\n" }
            return document
        } catch let e as UCIParseError {
            throw UCIError.parse(e)
        }
    }

    func configs() -> [String]? {
        guard let names = files.list(confDir), !names.isEmpty else { return nil }
        return names.filter(UCINames.isValidPackage)
    }

    // MARK: Package commands

    mutating func packageCommand(_ command: String, _ args: [String]) -> Int32 {
        guard args.count <= 2 else { return 255 }
        if args.count == 2 { return packageCommand(command, target: args[1]) }
        guard let all = configs() else {
            error("uci: Entry not found\n")
            return 1
        }
        for package in all { _ = packageCommand(command, target: package) }
        return 0
    }

    mutating func packageCommand(_ command: String, target: String) -> Int32 {
        do {
            let path = try UCIPath.parse(target)
            let loaded = try load(path.package)
            let found = try loaded.document.lookup(path)
            let document = loaded.document
            switch command {
            case "changes":
                for delta in loaded.staged { result.output += delta.change + "\n" }
            case "commit":
                if !noCommit { try commit(path.package) }
            case "export":
                result.output += document.export(header: true, nameAnonymous: nameAnonymous)
            default:
                guard found.isComplete else { throw UCIError.notFound }
                if let s = found.sectionIndex {
                    let section = document.sections[s]
                    if let o = found.optionIndex {
                        show(document.package, section.name, section.options[o])
                    } else {
                        show(document.package, section.name, section)
                    }
                } else {
                    show(document)
                }
            }
            return 0
        } catch {
            report(error)
            return 1
        }
    }

    /// Writes the file with the changes staged in the save directory, then empties that save file.
    /// The file is read again first, as uci does, so that an edit made meanwhile is kept.
    /// Changes staged in the other delta directories are written too, but only the save
    /// directory's file is emptied (uci_load_delta with flush); nothing is written when no staged
    /// change applies.
    mutating func commit(_ package: String) throws {
        let path = configPath(package)
        guard let text = try files.read(path) else { throw UCIError.notFound }
        var document = try parseFile(text, package: package)
        var applied = 0
        for dir in deltaPaths + [saveDir] {
            for delta in UCIDelta.parseFile(try files.read(dir + "/" + package) ?? "", package: package) {
                if document.apply(delta) { applied += 1 }
            }
        }
        guard applied > 0 else { return }
        try files.replaceAtomically(path, document.render())
        try files.replace(savePath(package), "")
    }

    mutating func show(_ document: UCIDocument) {
        var seen: [String: Int] = [:]
        for section in document.sections {
            var reference = section.name
            if showExtended {
                let index = seen[section.type, default: 0]
                seen[section.type] = index + 1
                if section.isAnonymous { reference = "@\(section.type)[\(index)]" }
            }
            show(document.package, reference, section)
        }
    }

    mutating func show(_ package: String, _ reference: String, _ section: UCIDocument.Section) {
        result.output += "\(package).\(reference)=\(section.type)\n"
        for option in section.options { show(package, reference, option) }
    }

    mutating func show(_ package: String, _ reference: String, _ option: UCIDocument.Option) {
        result.output += "\(package).\(reference).\(option.name)=\(text(option.value, quoted: true))\n"
    }

    /// `show` quotes every value; `get` prints strings raw and quotes list items with white space.
    func text(_ value: UCIValue, quoted: Bool) -> String {
        switch value {
        case .string(let v): return quoted ? "'\(UCIDocument.escape(v))'" : v
        case .list(let items):
            return items.map { item in
                // strpbrk(" \t\r\n"), byte by byte: as Characters "\r\n" would be one.
                let plain = !quoted && !item.utf8.contains { $0 == 0x20 || $0 == 0x09 || $0 == 0x0d || $0 == 0x0a }
                return plain ? item : "'\(UCIDocument.escape(item))'"
            }.joined(separator: delimiter)
        }
    }

    // MARK: Section commands

    mutating func sectionCommand(_ command: String, _ args: [String]) -> Int32 {
        guard args.count == 2 else { return 255 }
        let path: UCIPath
        let loaded: Loaded
        let found: UCILookup
        do {
            path = try UCIPath.parse(args[1])
            loaded = try load(path.package)
            found = try loaded.document.lookup(path)
        } catch {
            report(error)
            return 1
        }
        if path.value != nil && (command == "get" || command == "revert") { return 1 }
        var document = loaded.document
        let section = found.section ?? ""
        var delta: UCIDelta?
        do {
            switch command {
            case "get":
                guard found.isComplete else { throw UCIError.notFound }
                if let s = found.sectionIndex {
                    if let o = found.optionIndex {
                        result.output += text(document.sections[s].options[o].value, quoted: false) + "\n"
                    } else {
                        result.output += document.sections[s].type + "\n"
                    }
                }
                return 0
            case "revert":
                try revert(path.package, section: found.section, option: path.option)
                return 0
            case "set":
                if try document.set(found, path) {
                    let remove = path.value == ""
                    delta = UCIDelta(
                        remove ? .remove : .change, package: path.package, section: section, option: path.option,
                        value: remove ? nil : path.value)
                }
            case "add_list":
                try document.addList(found, path)
                delta = UCIDelta(
                    .listAdd, package: path.package, section: section, option: path.option, value: path.value)
            case "del_list":
                if try document.deleteFromList(found, path) {
                    delta = UCIDelta(
                        .listDelete, package: path.package, section: section, option: path.option, value: path.value)
                }
            case "reorder":
                guard let s = found.sectionIndex, let value = path.value else { throw UCIError.notFound }
                if let position = document.reorder(section: s, to: value) {
                    delta = UCIDelta(.reorder, package: path.package, section: section, value: position)
                }
            case "del", "delete":
                if let v = path.value, !v.isEmpty, UCIDocument.leadingInteger(v) == nil { return 1 }
                // Only a list item deletion records its index.
                var isList = false
                if let s = found.sectionIndex, let o = found.optionIndex,
                    case .list = document.sections[s].options[o].value
                {
                    isList = path.value?.isEmpty == false
                }
                if try document.delete(found, path) {
                    delta = UCIDelta(
                        .remove, package: path.package, section: section, option: path.option,
                        value: isList ? path.value : nil)
                }
            default:
                try document.rename(found, path)
                delta = UCIDelta(
                    .rename, package: path.package, section: section, option: path.option, value: path.value)
            }
            if let delta { try files.append(savePath(path.package), delta.line + "\n") }
            return 0
        } catch {
            report(error)
            return 1
        }
    }

    /// Drops the staged changes to a package, a section or an option from the save file.
    mutating func revert(_ package: String, section: String?, option: String?) throws {
        guard let text = try files.read(savePath(package)) else { return }
        var kept = ""
        for record in UCIDelta.records(text) {
            // A record uci cannot read stops the whole revert, leaving the file as it was.
            guard let delta = record else { return }
            let matches =
                (section == nil || delta.section == section) && (option == nil || delta.option == option)
            if !matches { kept += delta.line + "\n" }
        }
        try files.replace(savePath(package), kept)
    }

    // MARK: add, import

    mutating func add(_ args: [String]) -> Int32 {
        guard args.count == 3 else { return 255 }
        do {
            var document = try load(args[1]).document
            let name = document.addSection(type: args[2])
            let delta = UCIDelta(.add, package: args[1], section: name, value: args[2])
            try files.append(savePath(args[1]), delta.line + "\n")
            result.output += name + "\n"
            return 0
        } catch {
            report(error)
            return (error as? UCIError)?.code ?? 1
        }
    }

    mutating func importCommand(_ args: [String]) -> Int32 {
        guard args.count <= 2 else { return 255 }
        let name = args.count == 2 ? args[1] : nil
        if merge && name == nil { return 255 }
        do {
            if let name, !UCINames.isValidPackage(name) { throw UCIError.invalidArgument }
            // Inside batch, import reads the rest of batch's own input, as uci's shared stream does.
            let input = try batchInput?.takeRest() ?? inputText ?? standardInput ?? files.readInput(nil)
            loadedPackage = true
            if merge, let name, let loaded = try? load(name) {
                try mergeImport(input, into: loaded.document)
                return 0
            }
            var documents: [UCIDocument]
            var warnings: [UCIParseError] = []
            do {
                if let name {
                    documents = [try UCIDocument.parse(input, package: name, strict: strict, warnings: &warnings)]
                } else {
                    documents = try UCIDocument.parseImport(input, strict: strict, warnings: &warnings)
                }
            } catch let e as UCIParseError {
                throw UCIError.parse(e)
            } catch UCITextParser.Failure.parse(let e) {
                throw UCIError.parse(e)
            } catch UCITextParser.Failure.duplicatePackage {
                throw UCIError.duplicate
            }
            for w in warnings { result.errors += w.description + "\n" }
            // Imported packages replace the files whole, written the way uci writes them.
            for document in documents {
                // A new package: its file is the configuration directory's, never the override's.
                try files.replaceAtomically(
                    confDir + "/" + document.package, document.export(header: false, nameAnonymous: false))
            }
            return 0
        } catch {
            report(error)
            return 1
        }
    }

    /// `import -m`: the input's sections and options become staged changes to the package.
    mutating func mergeImport(_ input: String, into existing: UCIDocument) throws {
        var document = existing
        let package = document.package
        let incoming: UCIDocument
        do {
            var warnings: [UCIParseError] = []
            incoming = try UCIDocument.parse(input, package: package, strict: strict, warnings: &warnings)
        } catch let e as UCIParseError {
            throw UCIError.parse(e)
        }
        var deltas: [UCIDelta] = []
        for section in incoming.sections {
            var name = section.name
            if section.isAnonymous {
                name = document.addSection(type: section.type)
                deltas.append(UCIDelta(.add, package: package, section: name, value: section.type))
            } else {
                let path = UCIPath(package: package, section: name, option: nil, value: section.type, isExtended: false)
                if try document.set(document.lookup(path), path) {
                    deltas.append(UCIDelta(.change, package: package, section: name, value: section.type))
                }
            }
            for option in section.options {
                switch option.value {
                case .string(let v):
                    let path = UCIPath(
                        package: package, section: name, option: option.name, value: v, isExtended: false)
                    if try document.set(document.lookup(path), path) {
                        deltas.append(UCIDelta(.change, package: package, section: name, option: option.name, value: v))
                    }
                case .list(let items):
                    for item in items {
                        let path = UCIPath(
                            package: package, section: name, option: option.name, value: item, isExtended: false)
                        try document.addList(document.lookup(path), path)
                        deltas.append(
                            UCIDelta(.listAdd, package: package, section: name, option: option.name, value: item))
                    }
                }
            }
        }
        if !deltas.isEmpty { try files.append(savePath(package), deltas.map { $0.line + "\n" }.joined()) }
    }
}
