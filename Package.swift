// swift-tools-version:6.1
//
// The dependency direction is the architecture: protocol code (BraidWire) cannot reach a socket,
// mechanism (BraidNetlink, BraidDataPlane) knows nothing of roles, and the two roles
// (BraidGateway, BraidConcentrator) never import each other. The `braid` executable only wires.
import PackageDescription

let package = Package(
    name: "braid",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "braid", targets: ["braid"]),
        .executable(name: "braid-lab", targets: ["braid-lab"]),
        // For the libFuzzer drivers in Fuzz/, a package of their own built with `--sanitize fuzzer`.
        .library(name: "BraidFuzzTargets", targets: ["BraidFuzzTargets"]),
    ],
    // The PostgreSQL subscriber store brings postgres-nio, and with it Foundation, ICU,
    // swift-crypto and swift-nio-ssl: a concentrator wants it, the CPE appliance must not carry
    // it. `swift build --disable-default-traits` builds braid without it.
    traits: [
        .trait(name: "PostgreSQLStore", description: "The subscriber store in PostgreSQL (postgres-nio)."),
        .default(enabledTraits: ["PostgreSQLStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // Thin C shims. Each exists only because Swift cannot reach the C API directly.
        .target(name: "CBraidLinux"),
        .systemLibrary(name: "CNetlink", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CNftables", pkgConfig: "libnftables", providers: [.apt(["libnftables-dev"])]),

        .target(
            name: "BraidCore",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        // Sans-I/O codecs. COpenSSL is here for HMAC-SHA256 and randomness only: pure computation.
        .target(
            name: "BraidWire",
            dependencies: ["BraidCore", "COpenSSL"]
        ),
        .target(name: "BraidConfig", dependencies: ["BraidCore"]),
        // The control channel's TLS: OpenSSL over memory BIOs under a NIO handler of our own, and
        // the operator's PKI. The only module that links libssl and NIO.
        .target(
            name: "BraidTLS",
            dependencies: [
                "BraidCore", "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "BraidNetlink",
            dependencies: ["BraidCore", "CNetlink", "CBraidLinux", .product(name: "Logging", package: "swift-log")]
        ),
        // The data plane is its own epoll reactor per core so the relay can splice(2) between
        // sockets it owns; the control plane can use NIO when it comes.
        .target(
            name: "BraidDataPlane",
            dependencies: [
                "BraidCore", "BraidWire", "CBraidLinux", "CNftables",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A small read-only HTTP listener for the metrics exposition and the gateway's status page.
        // It also names a NIO peer's source block, which the control port counts by as well.
        .target(
            name: "BraidHTTP",
            dependencies: [
                "BraidCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Status documents: the typed values both roles answer `braid status` with, and the one JSON
        // encoder (and decoder, for the CLI) they go through. Pure values: no I/O, no Foundation.
        .target(name: "BraidStatus"),
        // The Prometheus exposition at `/metrics`, made from the status documents with swift-metrics
        // and its Prometheus backend, served by the BraidHTTP listener.
        .target(
            name: "BraidMetrics",
            dependencies: [
                "BraidCore", "BraidStatus", "BraidHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "BraidGateway",
            dependencies: [
                "BraidCore", "BraidWire", "BraidConfig", "BraidNetlink", "BraidDataPlane", "BraidTLS", "BraidStatus",
                "BraidMetrics", "BraidHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "BraidConcentrator",
            dependencies: [
                "BraidCore", "BraidWire", "BraidConfig", "BraidNetlink", "BraidDataPlane", "BraidTLS", "BraidStatus",
                "BraidMetrics", "BraidHTTP", "BraidStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The subscriber store: what a store is (classes, subscribers, usage rows), the uci one, and
        // the pure parts of the PostgreSQL one (URL, schema migrations, usage ledger). No I/O to a
        // database here, so the appliance build keeps it.
        .target(name: "BraidStore", dependencies: ["BraidCore", "BraidConfig"]),
        // The PostgreSQL store's I/O, only in builds with the PostgreSQLStore trait.
        .target(
            name: "BraidPostgreSQL",
            dependencies: [
                "BraidCore", "BraidConfig", "BraidStore",
                .product(name: "Logging", package: "swift-log"),
                .product(
                    name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["PostgreSQLStore"])),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["PostgreSQLStore"])),
                .product(name: "NIOCore", package: "swift-nio", condition: .when(traits: ["PostgreSQLStore"])),
            ]
        ),
        .executableTarget(
            name: "braid",
            dependencies: [
                "BraidCore", "BraidConfig", "BraidWire", "BraidDataPlane", "BraidGateway", "BraidConcentrator",
                "BraidTLS", "BraidStatus", "BraidStore", "BraidPostgreSQL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Lab tooling, not shipped on the appliance: traffic endpoints with integrity checks and the
        // TUN delay line that stands in for netem in tests and benchmarks.
        .executableTarget(
            name: "braid-lab",
            dependencies: [
                "BraidCore", "CBraidLinux", "COpenSSL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // `fleet`: simulated gateways speak the real control protocol over the real TLS.
                "BraidTLS", "BraidWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The parsers' fuzz entry points; the unit tests replay the seed corpus through them.
        .target(
            name: "BraidFuzzTargets", dependencies: ["BraidCore", "BraidWire", "BraidConfig"], path: "Fuzz/Targets"),
        .testTarget(name: "BraidCoreTests", dependencies: ["BraidCore"]),
        .testTarget(name: "BraidWireTests", dependencies: ["BraidWire", "BraidCore"]),
        .testTarget(name: "BraidFuzzTargetsTests", dependencies: ["BraidFuzzTargets"]),
        .testTarget(name: "BraidConfigTests", dependencies: ["BraidConfig", "BraidCore"]),
        .testTarget(
            name: "BraidGatewayTests",
            dependencies: ["BraidGateway", "BraidHTTP", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "BraidStatusTests", dependencies: ["BraidStatus"]),
        .testTarget(name: "BraidMetricsTests", dependencies: ["BraidMetrics", "BraidStatus"]),
        .testTarget(name: "BraidHTTPTests", dependencies: ["BraidHTTP", "BraidCore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "BraidStoreTests", dependencies: ["BraidStore", "BraidConfig"]),
        .testTarget(
            name: "BraidConcentratorTests",
            dependencies: [
                "BraidConcentrator", "BraidConfig", "BraidCore", "BraidDataPlane", "BraidWire", "BraidStore",
            ]),
        .testTarget(
            name: "BraidDataPlaneTests",
            dependencies: ["BraidDataPlane", "BraidWire", "BraidCore", .product(name: "Logging", package: "swift-log")]),
        // Golden cases for `braid uci`, read from Golden/ (braid's own) and Recorded/ (OpenWrt's uci).
        .testTarget(name: "BraidUCITests", dependencies: ["BraidConfig"], exclude: ["Golden", "Recorded"]),
        .testTarget(
            name: "BraidTLSTests",
            dependencies: [
                "BraidTLS", "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    // Tools 6.1 for traits; the code stays in the Swift 5 language mode it was written in.
    swiftLanguageModes: [.v5]
)
