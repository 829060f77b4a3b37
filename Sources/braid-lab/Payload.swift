import COpenSSL
import Glibc

/// Transfers are produced, hashed and received in chunks of this size: large enough that per-call
/// overhead vanishes, small enough to stay in L2 between the cipher, the hash and the copy to the socket.
let transferChunk = 256 * 1024

/// Non-repeating pseudo-random bytes: the AES-128-CTR keystream under a fresh key and IV from
/// RAND_bytes for every transfer. With AES-NI this runs at several GB/s, far ahead of the network and
/// of SHA-256, where os.urandom in the Python tool was the bottleneck.
final class PayloadStream {
    private let context: OpaquePointer

    init() throws {
        var material = [UInt8](repeating: 0, count: 32)
        guard RAND_bytes(&material, 32) == 1 else { throw LabError("RAND_bytes failed") }
        guard let context = EVP_CIPHER_CTX_new() else { throw LabError("EVP_CIPHER_CTX_new failed") }
        self.context = context
        let ok = material.withUnsafeBufferPointer { keyAndIV in
            EVP_EncryptInit_ex(context, EVP_aes_128_ctr(), nil, keyAndIV.baseAddress, keyAndIV.baseAddress! + 16)
        }
        guard ok == 1 else {
            EVP_CIPHER_CTX_free(context)
            throw LabError("EVP_EncryptInit_ex(aes-128-ctr) failed")
        }
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// Replaces the buffer's contents with the next bytes of the stream. It encrypts in place: CTR
    /// XORs fresh keystream over whatever the buffer held, which is as random as the keystream and
    /// saves zeroing it first.
    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        var produced: Int32 = 0
        // Cannot fail for CTR with a valid context and a length under 2 GiB.
        _ = EVP_EncryptUpdate(context, base, &produced, base, Int32(buffer.count))
    }
}

/// Whether transfers are hashed. `none` exists for CPU-bound benchmark runs, where SHA-256 on both
/// ends would otherwise be what is measured.
enum VerifyMode: String, CaseIterable {
    case sha256
    case disabled = "none"
}

/// Incremental SHA-256 through libcrypto's EVP interface (SHA-NI where the CPU has it), or nothing
/// at all when verification is off; `hex` is then "".
final class Checksum {
    private let context: OpaquePointer?

    init(_ mode: VerifyMode) throws {
        guard mode == .sha256 else {
            context = nil
            return
        }
        guard let context = EVP_MD_CTX_new() else { throw LabError("EVP_MD_CTX_new failed") }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            EVP_MD_CTX_free(context)
            throw LabError("EVP_DigestInit_ex(sha256) failed")
        }
        self.context = context
    }

    deinit { if let context { EVP_MD_CTX_free(context) } }

    var isEnabled: Bool { context != nil }

    @inline(__always)
    func update(_ bytes: UnsafeRawBufferPointer) {
        guard let context, bytes.count > 0 else { return }
        _ = EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
    }

    /// The digest in lowercase hex; call once, at the end of the transfer.
    func finish() -> String {
        guard let context else { return "" }
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context, &digest, &length)
        let hexDigits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(64)
        for byte in digest.prefix(Int(length)) {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// A page-aligned heap buffer of `transferChunk` bytes (or fewer) owned by one transfer or one loop.
final class ChunkBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(size: Int = transferChunk) {
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, size), alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { bytes.deallocate() }

    func prefix(_ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count])
    }
}
