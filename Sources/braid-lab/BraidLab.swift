import ArgumentParser

@main
struct BraidLab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "braid-lab", abstract: "Traffic endpoints and a delay line for braid's lab and benchmarks.")
}
