import BraidCore
import Glibc

/// A joinable POSIX thread running one closure. The tool's threads are few and long-lived (one per
/// event loop), so a bare pthread is all that is needed.
final class WorkerThread {
    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    private var thread = pthread_t()

    init(_ run: @escaping () -> Void) throws {
        let body = Unmanaged.passRetained(Body(run)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, body)
        if rc != 0 {
            Unmanaged<Body>.fromOpaque(body).release()
            throw SystemError("pthread_create", errno: rc)
        }
    }

    func join() {
        _ = pthread_join(thread, nil)
    }
}

/// Number of online CPUs: the default number of server loops.
func onlineProcessors() -> Int {
    max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}
