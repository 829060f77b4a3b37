import BraidStatus

/// The gateway's metrics, read off its status document: what `braid status` shows is what is
/// exported, from the same values.
public enum GatewayMetrics {
    public static func record(_ s: GatewayStatus, into m: MetricsExporter) {
        for u in s.uplinks {
            let uplink = [("uplink", u.name)]
            m.gauge("braid_uplink_up", uplink, u.state == "up" ? 1 : 0)
            if let rtt = u.rttMs { m.gauge("braid_uplink_rtt_seconds", uplink, rtt / 1000) }
            if let loss = u.loss { m.gauge("braid_uplink_loss_ratio", uplink, loss) }
            m.gauge("braid_uplink_subflows", uplink, Double(u.subflows))
            // Steering (issue 13): the share of the last 10 s in percent, and whether an overflow
            // uplink carries now.
            if let share = u.share { m.gauge("braid_uplink_share_percent", uplink, share) }
            if let overflow = u.overflow {
                m.gauge("braid_uplink_overflow_carrying", uplink, overflow == "carrying" ? 1 : 0)
            }
            m.count("braid_uplink_bytes_total", uplink + [("direction", "rx")], total: u.rxBytes)
            m.count("braid_uplink_bytes_total", uplink + [("direction", "tx")], total: u.txBytes)
        }
        m.gauge("braid_sessions_open", [], Double(s.sessions.active))
        m.count("braid_sessions_total", [], total: UInt64(max(0, s.sessions.total)))
        if let bytes = s.bytes {
            m.count("braid_session_bytes_total", [("direction", "up")], total: bytes.up)
            m.count("braid_session_bytes_total", [("direction", "down")], total: bytes.down)
        }
        m.gauge("braid_control_channel_up", [], s.control.state == "up" ? 1 : 0)
        for c in s.concentrators ?? [] {
            m.gauge("braid_concentrator_up", [("server", c.server)], c.state == "up" ? 1 : 0)
            m.gauge("braid_concentrator_in_use", [("server", c.server)], c.inUse ? 1 : 0)
        }
    }
}

/// The concentrator's metrics, read off its status document.
public enum ConcentratorMetrics {
    public static func record(_ s: ConcentratorStatus, into m: MetricsExporter) {
        for sub in s.subscribers {
            let subscriber = [("subscriber", sub.name)]
            m.count("braid_subscriber_bytes_total", subscriber + [("direction", "up")], total: sub.bytes.up)
            m.count("braid_subscriber_bytes_total", subscriber + [("direction", "down")], total: sub.bytes.down)
            m.gauge("braid_subscriber_sessions_open", subscriber, Double(sub.sessions))
            if sub.control.state != "none" {
                m.gauge("braid_subscriber_control_up", subscriber, sub.control.state == "up" ? 1 : 0)
            }
        }
        m.gauge("braid_control_channels_open", [], Double(s.controlChannels))
        m.gauge("braid_sessions_open", [], Double(s.sessions.active))
        m.count("braid_sessions_total", [], total: UInt64(max(0, s.sessions.total)))
        for r in s.refusals {
            m.count("braid_refusals_total", [("listener", r.listener), ("reason", r.reason)], total: r.count)
        }
    }
}
