/// What one `braid uci` run printed, and its exit status.
public struct UCIResult: Equatable, Sendable {
    public var output = ""
    public var errors = ""
    public var status: Int32 = 0
}

/// `braid uci`: OpenWrt's uci command line — the same arguments, output, messages and exit codes —
/// over the package files in a configuration directory (`-c`, default `/etc/config`) and the
/// changes staged in a save directory (`-P`, default `/tmp/.uci`) until `commit`.
///
/// Everything here is computation over `UCIFileSystem`; the file system is the only I/O.
public struct UCICommandLine {
    public static let usage = """
        Usage: braid uci [<options>] <command> [<arguments>]

        Commands:
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
        \t-d <str>   set the delimiter for list values in uci show
        \t-f <file>  use <file> as input instead of stdin
        \t-m         when importing, merge data into an existing package
        \t-n         name unnamed sections on export
        \t-N         don't name unnamed sections (default)
        \t-p <path>  add a search path for config change files
        \t-P <path>  add a search path for config change files and use as default
        \t              (changes staged there are not committed)
        \t-q         quiet mode (don't print error messages)
        \t-s         force strict mode (stop on parser errors, default)
        \t-S         disable strict mode
        \t-X         do not use extended syntax on 'show'


        """

    var confDir: String
    var saveDir: String
    var deltaPaths: [String] = []
    var delimiter = " "
    var inputFile: String?
    var quiet = false
    var merge = false
    var noCommit = false
    var strict = true
    var showExtended = true
    var nameAnonymous = false
    let files: UCIFileSystem
    var result = UCIResult()

    init(files: UCIFileSystem, confDir: String, saveDir: String) {
        self.files = files
        self.confDir = confDir
        self.saveDir = saveDir
    }

    /// Runs one command line (the arguments after `uci`).
    public static func run(
        _ arguments: [String], files: UCIFileSystem = UCILocalFiles(), confDir: String = "/etc/config",
        saveDir: String = "/tmp/.uci"
    ) -> UCIResult {
        var cli = UCICommandLine(files: files, confDir: confDir, saveDir: saveDir)
        let status = cli.main(arguments)
        if status == 255 { cli.result.errors += usage }
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
                if "cdfpP".contains(flag) {
                    var value = String(flags[(j + 1)...])
                    if value.isEmpty {
                        guard i + 1 < args.count else {
                            result.errors += "uci: option requires an argument: \(flag)\n" + Self.usage
                            return 0
                        }
                        i += 1
                        value = args[i]
                    }
                    switch flag {
                    case "c": confDir = value
                    case "d": delimiter = value
                    case "f":
                        if inputFile != nil {
                            error("Too many input files.\n")
                            return 1
                        }
                        guard (try? files.read(value)) ?? nil != nil else {
                            error("uci: No such file or directory\n")
                            return 1
                        }
                        inputFile = value
                    case "p": deltaPaths.append(value)
                    default:
                        // -P: changes go to (and are read from) this directory as well as the
                        // default one, and are never committed: uci's way of keeping runtime state.
                        deltaPaths.append(saveDir)
                        saveDir = value
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
                    result.errors += Self.usage
                    return 0
                }
                j += 1
            }
            i += 1
        }
        let command = Array(args[i...])
        guard let name = command.first else {
            result.errors += Self.usage
            return 0
        }
        // Staged changes are read from these directories and committed: they must be the user's.
        do {
            for dir in deltaPaths + [saveDir] { try files.checkPrivateDirectory(dir) }
        } catch {
            report(error)
            return (error as? UCIError)?.code ?? 1
        }
        switch name.lowercased() {
        case "show", "changes", "export", "commit": return packageCommand(name.lowercased(), command)
        case "get", "set", "add_list", "del_list", "del", "delete", "ren", "rename", "revert", "reorder":
            return sectionCommand(name.lowercased(), command)
        case "add": return add(command)
        case "import": return importCommand(command)
        case "help":
            result.errors += Self.usage
            return 0
        default: return 255
        }
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

    func configPath(_ package: String) -> String { confDir + "/" + package }
    func savePath(_ package: String) -> String { saveDir + "/" + package }

    /// The package as uci loads it: the file, then the changes staged for it.
    mutating func load(_ package: String) throws -> Loaded {
        guard UCINames.isValidPackage(package), let text = try files.read(configPath(package)) else {
            throw UCIError.notFound
        }
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
    mutating func commit(_ package: String) throws {
        guard let text = try files.read(configPath(package)) else { throw UCIError.notFound }
        var document = try parseFile(text, package: package)
        for dir in deltaPaths {
            for delta in UCIDelta.parseFile(try files.read(dir + "/" + package) ?? "", package: package) {
                document.apply(delta)
            }
        }
        var applied = 0
        for delta in UCIDelta.parseFile(try files.read(savePath(package)) ?? "", package: package) {
            if document.apply(delta) { applied += 1 }
        }
        guard applied > 0 else { return }
        try files.replaceAtomically(configPath(package), document.render())
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
                let plain = !quoted && !item.contains(where: { " \t\r\n".contains($0) })
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
                let position = document.reorder(section: s, to: value)
                delta = UCIDelta(.reorder, package: path.package, section: section, value: position)
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
        for line in text.split(separator: "\n") {
            // A line uci cannot read stops the whole revert, leaving the file as it was.
            guard let delta = UCIDelta.parse(String(line)) else { return }
            let matches =
                (section == nil || delta.section == section) && (option == nil || delta.option == option)
            if !matches { kept += line + "\n" }
        }
        try files.replace(savePath(package), kept)
    }

    // MARK: add, import

    mutating func add(_ args: [String]) -> Int32 {
        guard args.count == 3 else { return 255 }
        do {
            var document = try load(args[1]).document
            let name = try document.addSection(type: args[2])
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
            let input = try files.readInput(inputFile)
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
                try files.replaceAtomically(
                    configPath(document.package), document.export(header: false, nameAnonymous: false))
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
                name = try document.addSection(type: section.type)
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
