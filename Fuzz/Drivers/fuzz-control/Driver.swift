import BraidFuzzTargets

/// libFuzzer's entry point for the control frame decoder and session state machines. A crash, a sanitizer report or a
/// broken invariant (fatalError in BraidFuzzTargets) is a finding; the return value is unused.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    _ = FuzzControl.run(bytes)
    return 0
}
