/// One staged change, as uci keeps them in its save directory (`/tmp/.uci/PACKAGE`), one a record:
///
/// ```
/// braid.dsl.role='backup'        set an option (or, without an option, create a section of that type)
/// +braid.cfg034d21='uplink'      add an anonymous section
/// -braid.lte.gateway             delete (a list item when `='INDEX'` follows)
/// @braid.cfg034d21='line2'       rename a section or an option
/// ^braid.lte='0'                 move a section to a position
/// |braid.main.lan_device='lan2'  add a list item
/// ~braid.main.lan_device='lan2'  remove a list item
/// ```
///
/// Values are written in single quotes (a quote as `'\''`), so a value may hold spaces and line
/// breaks; a record is read back with the grammar of uci's files, one word per record.
public struct UCIDelta: Equatable, Sendable {
    public enum Command: Equatable, Sendable {
        case change, add, remove, rename, reorder, listAdd, listDelete

        var prefix: String {
            switch self {
            case .change: return ""
            case .add: return "+"
            case .remove: return "-"
            case .rename: return "@"
            case .reorder: return "^"
            case .listAdd: return "|"
            case .listDelete: return "~"
            }
        }
    }

    public var command: Command
    public var package: String
    public var section: String
    public var option: String?
    public var value: String?

    public init(_ command: Command, package: String, section: String, option: String? = nil, value: String? = nil) {
        self.command = command
        self.package = package
        self.section = section
        self.option = option
        self.value = value
    }

    var target: String { "\(package).\(section)" + (option.map { ".\($0)" } ?? "") }

    /// The record written to the save directory (one line, unless the value holds line breaks).
    public var line: String {
        command.prefix + target + (command == .remove && value == nil ? "" : "='\(UCIDocument.escape(value ?? ""))'")
    }

    /// How `uci changes` shows it: `-` for deletions, `+=`/`-=` for list items, values quoted.
    public var change: String {
        switch command {
        case .remove: return "-" + target
        case .listAdd: return target + "+='\(UCIDocument.escape(value ?? ""))'"
        case .listDelete: return target + "-='\(UCIDocument.escape(value ?? ""))'"
        default: return target + "='\(UCIDocument.escape(value ?? ""))'"
        }
    }

    /// Reads one record, already unquoted (`+p.s=t`, `p.s.o=two words`); nil for one uci would skip.
    public static func parse(_ line: String) -> UCIDelta? {
        var text = Substring(line)
        var command = Command.change
        switch text.first {
        case "^": command = .reorder
        case "-": command = .remove
        case "@": command = .rename
        case "+": command = .add
        case "|": command = .listAdd
        case "~": command = .listDelete
        default: break
        }
        if command != .change { text = text.dropFirst() }
        guard let path = try? UCIPath.parse(String(text)), let section = path.section, !path.isExtended else {
            return nil
        }
        switch command {
        case .reorder where path.value == nil || path.option != nil: return nil
        case .rename where path.value.map(UCINames.isValidName) != true: return nil
        case .listAdd where path.option == nil, .listDelete where path.option == nil: return nil
        default: break
        }
        return UCIDelta(command, package: path.package, section: section, option: path.option, value: path.value)
    }

    /// Reads a save file: every record that parses, for the given package.
    public static func parseFile(_ text: String, package: String) -> [UCIDelta] {
        records(text).compactMap { $0 }.filter { $0.package == package }
    }

    /// Every record of a save file in order, nil for one uci cannot read. A record is one word of
    /// uci's grammar (quotes may carry it over several lines) and nothing after it on its line.
    public static func records(_ text: String) -> [UCIDelta?] {
        var reader = UCITextParser(text: text, strict: true, importing: false)
        var out: [UCIDelta?] = []
        while let word = reader.nextRecord() {
            out.append(word.flatMap(parse))
        }
        return out
    }
}

extension UCIDocument {
    /// Replays a staged change onto the document. False when it does not apply (uci skips it).
    @discardableResult
    public mutating func apply(_ delta: UCIDelta) -> Bool {
        let path = UCIPath(
            package: delta.package, section: delta.section, option: delta.option, value: delta.value,
            isExtended: false)
        do {
            let found = try lookup(path)
            switch delta.command {
            case .reorder:
                guard let s = found.sectionIndex else { return false }
                _ = reorder(section: s, to: delta.value ?? "0")
            case .rename: try rename(found, path)
            case .remove: _ = try delete(found, path)
            case .listAdd: try addList(found, path)
            case .listDelete: _ = try deleteFromList(found, path)
            case .add, .change:
                _ = try set(found, path)
                if delta.command == .add && delta.option == nil, let s = sectionIndex(named: delta.section) {
                    sections[s].isAnonymous = true
                }
            }
            return true
        } catch {
            return false
        }
    }
}
