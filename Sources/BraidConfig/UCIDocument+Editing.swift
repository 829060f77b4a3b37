/// The edits uci's commands make, with uci's rules: which ones need the entry to exist, which are
/// no-ops, and where a changed entry ends up. Each returns whether there is a change to record.
extension UCIDocument {
    /// `set`: an option's value (a new option goes last, a changed one keeps its place, as in
    /// uci_set), a section's type, or a new named section. An empty value deletes.
    public mutating func set(_ found: UCILookup, _ path: UCIPath) throws -> Bool {
        guard let value = path.value else { throw UCIError.invalidArgument }
        guard found.sectionIndex != nil || (path.option == nil && path.section != nil) else {
            throw UCIError.invalidArgument
        }
        if path.option == nil && !value.isEmpty && !UCINames.isValidType(value) { throw UCIError.invalidArgument }
        if value.isEmpty {
            // Setting what does not exist to nothing is not an error, and not a change.
            guard found.isComplete else { return false }
            return try delete(found, path)
        }
        if let s = found.sectionIndex, let option = path.option {
            if let o = found.optionIndex {
                if sections[s].options[o].value == .string(value) { return false }
                sections[s].options[o] = Option(name: option, value: .string(value), line: 0)
            } else {
                sections[s].options.append(Option(name: option, value: .string(value), line: 0))
            }
        } else if let s = found.sectionIndex {
            // uci_set writes a type of the same length over the old one, and otherwise allocates the
            // section anew under its (generated) name: an unnamed section then becomes a named one.
            if sections[s].type.utf8.count != value.utf8.count { sections[s].isAnonymous = false }
            sections[s].type = value
        } else {
            // A new section needs a real name; uci would create one called `@type[9]`.
            guard let name = path.section, !path.isExtended else { throw UCIError.invalidArgument }
            allocateSection(type: value, name: name)
        }
        return true
    }

    /// `add_list`: appends an item; an option holding a string becomes, in its place, a list of it
    /// and the item.
    public mutating func addList(_ found: UCILookup, _ path: UCIPath) throws {
        guard let s = found.sectionIndex, let option = path.option, let value = path.value else {
            throw UCIError.invalidArgument
        }
        if let o = found.optionIndex {
            switch sections[s].options[o].value {
            case .list(let items):
                sections[s].options[o].value = .list(items + [value])
                return
            case .string(let old):
                sections[s].options[o] = Option(name: option, value: .list([old, value]), line: 0)
            }
        } else {
            sections[s].options.append(Option(name: option, value: .list([value]), line: 0))
        }
    }

    /// `del_list`: removes every item equal to the value; nothing to do unless the option is a list.
    public mutating func deleteFromList(_ found: UCILookup, _ path: UCIPath) throws -> Bool {
        guard let s = found.sectionIndex, let value = path.value else { throw UCIError.invalidArgument }
        guard let o = found.optionIndex, case .list(let items) = sections[s].options[o].value else { return false }
        sections[s].options[o].value = .list(items.filter { $0 != value })
        return true
    }

    /// `delete`: a section, an option, or (with `=INDEX`) one item of a list.
    public mutating func delete(_ found: UCILookup, _ path: UCIPath) throws -> Bool {
        guard found.isComplete else { throw UCIError.notFound }
        guard let s = found.sectionIndex else { throw UCIError.invalidArgument }
        if let o = found.optionIndex {
            if case .list(var items) = sections[s].options[o].value, let v = path.value, !v.isEmpty {
                guard let index = Self.leadingInteger(v) else { return false }
                guard items.indices.contains(index) else { return false }
                items.remove(at: index)
                sections[s].options[o].value = .list(items)
                return true
            }
            sections[s].options.remove(at: o)
        } else {
            sections.remove(at: s)
        }
        return true
    }

    /// `rename`: a section (which stops being anonymous) or an option.
    public mutating func rename(_ found: UCILookup, _ path: UCIPath) throws {
        guard found.isComplete else { throw UCIError.notFound }
        guard let s = found.sectionIndex, let value = path.value else { throw UCIError.invalidArgument }
        // A name uci cannot read back (`bad-name`) is taken and saved all the same, as uci does;
        // the saved record is then skipped on every load, so the rename never happens.
        if let o = found.optionIndex {
            sections[s].options[o].name = value
        } else {
            sections[s].name = value
            sections[s].isAnonymous = false
        }
    }

    /// `reorder`: moves a section to a position (past the end means last). Returns the position
    /// as uci records it, or nil when the section was there already (uci records nothing then).
    public mutating func reorder(section s: Int, to position: String) -> String? {
        // strtoul(3), then stored in an int, as uci does: "-1" and huge numbers come out negative.
        var text = Substring(position).drop { $0 == " " || ($0 >= "\t" && $0 <= "\r") }
        let negative = text.first == "-"
        if text.first == "-" || text.first == "+" { text = text.dropFirst() }
        var value: UInt64 = 0
        for c in text.prefix(while: { $0.isASCII && $0.isNumber }) {
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(UInt64(c.asciiValue! - 48))
            if o1 || o2 {
                value = .max
                break
            }
            value = sum
        }
        let wanted = Int32(truncatingIfNeeded: negative ? 0 &- value : value)
        let moved = sections.remove(at: s)
        let index = wanted <= 0 ? 0 : min(Int(wanted), sections.count)
        sections.insert(moved, at: index)
        return index == s ? nil : String(wanted)
    }

    /// `add`: a new anonymous section at the end; returns its generated name. Any type is taken,
    /// as uci_add_section takes it: the check is where the change is read back (`set` of a
    /// section type), so `add braid 'bad type'` succeeds and the section is then dropped on load,
    /// both as uci does. braid's own schema is `braid check`'s business, not this command's.
    public mutating func addSection(type: String) -> String {
        let index = allocateSection(type: type, name: nil)
        return sections[index].name
    }

    /// sscanf("%d"): the integer at the start of the text, if any.
    static func leadingInteger(_ s: String) -> Int? {
        let t = s.drop { $0 == " " || $0 == "\t" }
        var digits = t.prefix { $0 == "-" || $0 == "+" || ($0.isASCII && $0.isNumber) }
        if let first = digits.first, first == "-" || first == "+" {
            digits = digits.prefix(1) + digits.dropFirst().prefix { $0.isASCII && $0.isNumber }
        } else {
            digits = digits.prefix { $0.isASCII && $0.isNumber }
        }
        return Int(digits)
    }
}
