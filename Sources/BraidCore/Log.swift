import Logging

/// Log labels are the module that speaks, so an operator can filter one subsystem.
public enum BraidLog {
    public static func logger(_ label: String) -> Logger {
        Logger(label: "braid.\(label)")
    }
}
