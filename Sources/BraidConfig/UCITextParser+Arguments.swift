/// Reading words rather than statements: the records of a save file and the commands of
/// `uci batch` are read with the same grammar as a package file (quotes, backslashes, `#`, `;`),
/// which is what lets a value carry spaces and line breaks through both.
extension UCITextParser {
    /// What one line of `uci batch` input held.
    enum BatchLine: Equatable {
        case command([String])
        /// More words than uci's batch takes (it reads at most `limit` and refuses a line with that many).
        case tooManyArguments
        case failed(UCIParseError)
    }

    /// The next record of a save file (uci_parse_delta): one word, nothing after it on its line.
    /// nil at the end of the text; `.some(nil)` for a record uci cannot read (and skips).
    mutating func nextRecord() -> String?? {
        guard next < source.count else { return nil }
        startChunk()
        do {
            let word = try argument(required: false)
            return .some(cur == 0 ? word : nil)
        } catch {
            return .some(nil)
        }
    }

    /// The next command of `uci batch` input (uci_batch_cmd): its words, read from a line and any
    /// lines a quote or a trailing backslash carries it over; nil at the end of the input.
    mutating func nextCommand(limit: Int) -> BatchLine? {
        guard next < source.count else { return nil }
        startChunk()
        var words: [String] = []
        do {
            while true {
                // uci counts before it reads: a line with exactly `limit` words is already too many.
                if words.count == limit { return .tooManyArguments }
                let word = try argument(required: false)
                if word.isEmpty { break }
                words.append(word)
            }
        } catch Failure.parse(let e) {
            return .failed(e)
        } catch {
            return .failed(UCIParseError(reason: "\(error)", line: line, byte: pos, word: nil, fileLine: line))
        }
        return .command(words)
    }

    /// uci counts lines from where it started reading with a fresh parser, and every command that
    /// loads a package gives batch a fresh one: error positions count from there.
    mutating func restartLineCount() {
        line = 0
    }

    /// What is left of the input after the current line (`import` inside `batch` reads it).
    mutating func takeRest() -> String {
        let rest = String(decoding: source[next...], as: UTF8.self)
        next = source.count
        return rest
    }

    private mutating func startChunk() {
        pos = 0
        buf = []
        readLine(at: 0)
    }
}
