/// What one fuzz input did, so the corpus replay tests can check that each valid seed still
/// reaches the code it was written for. The fuzzers themselves ignore it: they look for crashes.
public enum FuzzOutcome: Equatable, Sendable {
    /// The parser accepted the input (a whole message, a session step, a package).
    case accepted
    /// The parser refused the input with an error, or wanted more bytes.
    case refused
}

/// A broken invariant: the fuzzer reports the input that led here as a crash.
func invariant(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line)
{
    if !condition { fatalError("invariant broken: \(message())", file: file, line: line) }
}
