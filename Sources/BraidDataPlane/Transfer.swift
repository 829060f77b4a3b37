#if canImport(Glibc)
import Glibc
#endif

/// The outcome of a non-blocking read, write or splice: bytes moved, would block, end of input,
/// or the errno that ended the connection. Not thrown: these are the hot path's normal results.
enum IOResult: Equatable {
    case moved(Int)
    case wouldBlock
    case end
    case failed(Int32)

    /// Bytes moved, 0 for any other outcome.
    var moved: Int {
        if case .moved(let n) = self { return n }
        return 0
    }
}

/// Runs a non-blocking transfer call, retrying EINTR, and classifies its result.
@inline(__always)
func transfer(_ body: () -> Int) -> IOResult {
    while true {
        let r = body()
        if r > 0 { return .moved(r) }
        if r == 0 { return .end }
        let e = Glibc.errno
        switch e {
        case EINTR: continue
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        default: return .failed(e)
        }
    }
}
