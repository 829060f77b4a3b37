import BraidCore
import BraidWire

/// The RFC 8803 Convert parser and both handshakes, fed arbitrary bytes.
public enum FuzzConvert {
    /// The key and clock the server handshake runs with, so seeds can carry valid MACs.
    public static let key = [UInt8](repeating: 0x42, count: 32)
    public static let nowMillis: UInt64 = 1_790_000_000_000

    public static func run(_ data: [UInt8]) -> FuzzOutcome {
        var outcome = FuzzOutcome.refused
        if case .message(let message, let length)? = try? ConvertMessage.parse(data) {
            invariant(
                length >= 4 && length <= data.count && length % 4 == 0, "message length \(length) of \(data.count)")
            // A message we read must survive our own encoder unchanged: the concentrator echoes
            // nothing back, but the gateway and the tests build requests with it.
            let again = try? ConvertMessage.parse(try message.encode())
            guard case .message(let reread, _)? = again else {
                invariant(false, "parsed message does not re-encode: \(message)")
                return outcome
            }
            invariant(reread == message, "re-encoded \(message) reads back as \(reread)")
        }

        // The concentrator's side, whole and in two pieces: buffering must not change the answer.
        var replay = ReplayGuard()
        var whole = ConvertServerHandshake(authenticator: ConvertAuthenticator(key: key))
        let answer = whole.feed(data, nowMillis: nowMillis, replay: &replay)
        if case .connect(_, let remainder) = answer {
            invariant(remainder.count < data.count, "remainder of \(remainder.count) bytes from \(data.count)")
            outcome = .accepted
        }
        var split = ConvertServerHandshake(authenticator: ConvertAuthenticator(key: key))
        var freshReplay = ReplayGuard()
        let half = data.count / 2
        var splitAnswer = split.feed(data[..<half], nowMillis: nowMillis, replay: &freshReplay)
        if splitAnswer == .needMore {
            splitAnswer = split.feed(data[half...], nowMillis: nowMillis, replay: &freshReplay)
        } else if case .connect(let request, let remainder) = splitAnswer {
            // The message fit in the first piece; the second is more client data.
            splitAnswer = .connect(request, remainder: remainder + data[half...])
        }
        invariant(sameOutcome(answer, splitAnswer), "whole input gave \(answer), split input \(splitAnswer)")
        invariant(split.bufferedCount <= data.count, "buffered \(split.bufferedCount) of \(data.count)")

        // The gateway's side reads the concentrator's reply from the same kind of stream.
        var client = ConvertClientHandshake()
        _ = client.feed(data)
        return outcome
    }

    /// Equal decisions; the reasons may differ (a split input can fail on an earlier check).
    static func sameOutcome(_ a: ConvertServerHandshake.Action, _ b: ConvertServerHandshake.Action) -> Bool {
        switch (a, b) {
        case (.needMore, .needMore), (.reject, .reject): return true
        case (.connect(let r1, let rest1), .connect(let r2, let rest2)): return r1 == r2 && rest1 == rest2
        default: return false
        }
    }
}
