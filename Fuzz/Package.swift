// swift-tools-version:5.9
//
// The libFuzzer drivers, a package of their own because they only link with `--sanitize fuzzer`
// (libFuzzer supplies `main`): keeping them out of the main package keeps `swift build` plain.
// Build and run them with `Fuzz/run.sh TARGET SECONDS`.
import PackageDescription

func driver(_ name: String) -> Target {
    .executableTarget(
        name: name,
        dependencies: [.product(name: "BraidFuzzTargets", package: "braid")],
        path: "Drivers/\(name)",
        // No top-level code and no @main: the entry point is libFuzzer's.
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]
    )
}

let package = Package(
    name: "braid-fuzz",
    dependencies: [.package(name: "braid", path: "..")],
    targets: [driver("fuzz-convert"), driver("fuzz-control"), driver("fuzz-uci")]
)
