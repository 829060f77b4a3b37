extension StatusPage {
    /// The whole page: markup, style and script in one document built into the binary, so it
    /// works with no Internet and no file on the box, and its Content-Security-Policy can forbid
    /// every fetch but its own two JSON routes. It polls `status.json` every half second (an
    /// uplink going down shows within a probe timeout and half a second) and `history.json`
    /// every second, and builds its DOM with textContent only: uplink names are operator text.
    ///
    /// Hooks the browser test reads: each uplink is a `section.uplink` with `data-name` and
    /// `data-state`; its graph's `polyline.rx` and `polyline.tx` carry the plotted points and
    /// `data-rx-bps` / `data-tx-bps` the newest rates.
    static let html = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>braid gateway</title>
        <style>
        :root { --bg:#f6f7f9; --card:#fff; --ink:#1d232b; --dim:#667080; --line:#dde1e6;
                --up:#1f9d55; --down:#d64545; --off:#8a94a3; --rx:#2b6cb0; --tx:#dd8a1e; }
        @media (prefers-color-scheme: dark) {
          :root { --bg:#14171b; --card:#1d2127; --ink:#e6e9ed; --dim:#98a2b0; --line:#323842; }
        }
        * { box-sizing: border-box; }
        body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--ink); }
        header { padding:14px 20px; display:flex; flex-wrap:wrap; gap:8px 28px; align-items:baseline;
                 border-bottom:1px solid var(--line); background:var(--card); }
        header h1 { font-size:18px; margin:0 12px 0 0; }
        .kv { color:var(--dim); } .kv b { color:var(--ink); font-weight:600; }
        #stale { color:var(--down); font-weight:600; }
        main { padding:16px 20px; display:grid; gap:14px; grid-template-columns:repeat(auto-fill, minmax(420px, 1fr)); }
        section.uplink { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
        section.uplink h2 { font-size:16px; margin:0; display:flex; gap:10px; align-items:center; }
        .badge { font-size:12px; font-weight:700; padding:2px 8px; border-radius:10px; color:#fff; background:var(--off);
                 text-transform:uppercase; letter-spacing:.04em; }
        [data-state="up"] .badge { background:var(--up); } [data-state="down"] .badge { background:var(--down); }
        section.uplink[data-state="down"] { border-color:var(--down); }
        .facts { display:grid; grid-template-columns:repeat(4, auto); gap:2px 14px; margin:8px 0; color:var(--dim); }
        .facts b { color:var(--ink); font-weight:600; display:block; }
        .rates { display:flex; gap:18px; font-weight:600; }
        .rates .rx { color:var(--rx); } .rates .tx { color:var(--tx); }
        svg { width:100%; height:120px; display:block; margin-top:6px; }
        svg .grid { stroke:var(--line); stroke-width:1; }
        svg polyline { fill:none; stroke-width:2; vector-effect:non-scaling-stroke; stroke-linejoin:round; }
        svg polyline.rx { stroke:var(--rx); } svg polyline.tx { stroke:var(--tx); }
        .axis { display:flex; justify-content:space-between; color:var(--dim); font-size:12px; }
        .warn { color:var(--down); font-size:12px; margin-top:4px; }
        </style>
        </head>
        <body>
        <header>
          <h1>braid gateway</h1>
          <span class="kv">concentrator <b id="concentrator">–</b></span>
          <span class="kv">control channel <b id="control">–</b></span>
          <span class="kv">sessions <b id="sessions">–</b></span>
          <span class="kv">bonded <b id="total">–</b></span>
          <span class="kv"><b style="color:var(--rx)">↓</b> from the uplinks <b style="color:var(--tx)">↑</b> to them</span>
          <span id="stale"></span>
        </header>
        <main id="uplinks"></main>
        <script>
        "use strict";
        // The graph spans the history the gateway has, at least a minute and at most its five.
        const MIN_WINDOW_MS = 60000, MAX_WINDOW_MS = 300000, W = 600, H = 120;
        let doc = null, hist = null, lastAnswer = 0;

        function rate(bps) {
          if (bps == null) return "–";
          const units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"];
          let i = 0;
          while (bps >= 1000 && i < units.length - 1) { bps /= 1000; i++; }
          return (bps < 10 ? bps.toFixed(2) : bps < 100 ? bps.toFixed(1) : bps.toFixed(0)) + " " + units[i];
        }
        function family(addresses) {
          const v4 = addresses.some(a => !a.includes(":")), v6 = addresses.some(a => a.includes(":"));
          return v4 && v6 ? "IPv4 + IPv6" : v4 ? "IPv4" : v6 ? "IPv6" : "no address";
        }
        function el(tag, cls, parent, ns) {
          const e = ns ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
          if (cls) e.setAttribute("class", cls);
          if (parent) parent.appendChild(e);
          return e;
        }
        function fact(parent, label) {
          const d = el("div", null, parent); d.textContent = label; return el("b", null, d);
        }
        // One card per uplink, made once and updated in place.
        function card(name) {
          const main = document.getElementById("uplinks");
          for (const s of main.children) if (s.dataset.name === name) return s;
          const s = el("section", "uplink", main);
          s.dataset.name = name;
          const h = el("h2", null, s);
          el("span", "name", h).textContent = name;
          el("span", "badge", h);
          el("span", "kv device", h);
          const f = el("div", "facts", s);
          s._f = { role: fact(f, "role"), family: fact(f, "family"), rtt: fact(f, "RTT"), loss: fact(f, "loss"),
                   subflows: fact(f, "subflows"), addresses: fact(f, "addresses"), since: fact(f, "since"),
                   carrier: fact(f, "carrier") };
          const r = el("div", "rates", s);
          s._rx = el("span", "rx", r); s._tx = el("span", "tx", r);
          const svg = el("svg", null, s, true);
          svg.setAttribute("viewBox", "0 0 " + W + " " + H);
          svg.setAttribute("preserveAspectRatio", "none");
          for (const y of [H * 0.05, H / 2]) {
            const g = el("line", "grid", svg, true);
            g.setAttribute("x1", 0); g.setAttribute("x2", W); g.setAttribute("y1", y); g.setAttribute("y2", y);
          }
          s._prx = el("polyline", "rx", svg, true); s._ptx = el("polyline", "tx", svg, true);
          const axis = el("div", "axis", s);
          s._span = el("span", null, axis);
          s._max = el("span", null, axis);
          el("span", null, axis).textContent = "now";
          s._warn = el("div", "warn", s);
          return s;
        }
        function points(values, ages, max, span) {
          const out = [];
          for (let i = 0; i < values.length; i++) {
            if (values[i] == null) continue;
            const x = W - (ages[i] / span) * W, y = H - (values[i] / max) * H * 0.95;
            out.push(x.toFixed(1) + "," + y.toFixed(1));
          }
          return out.join(" ");
        }
        function render() {
          if (!doc) return;
          document.getElementById("concentrator").textContent = doc.concentrator || "–";
          const c = doc.control || {};
          let control = c.state || "–";
          if (c.key != null) control += " · key " + c.key;
          if (c.class) control += " · class " + c.class;
          if (c.error && c.state !== "up") control += " · " + c.error;
          document.getElementById("control").textContent = control;
          const s = doc.sessions || {};
          document.getElementById("sessions").textContent = (s.active ?? "–") + " active, " + (s.total ?? "–") + " total";
          const series = {};
          if (hist) for (const h of hist.uplinks) series[h.name] = h;
          let totalRx = 0, totalTx = 0;
          const names = new Set();
          for (const u of doc.uplinks || []) {
            names.add(u.name);
            const card_ = card(u.name), f = card_._f;
            card_.dataset.state = u.state;
            card_.querySelector(".badge").textContent = u.state;
            card_.querySelector(".device").textContent = u.device;
            f.role.textContent = u.role;
            f.family.textContent = family(u.addresses || []);
            f.rtt.textContent = u.rtt_ms == null ? "–" : u.rtt_ms.toFixed(1) + " ms";
            f.loss.textContent = u.loss == null ? "–" : (u.loss * 100).toFixed(1) + " %";
            f.subflows.textContent = u.subflows;
            f.addresses.textContent = (u.addresses || []).join(", ") || "none";
            f.since.textContent = u.since ? new Date(u.since * 1000).toLocaleTimeString() : "–";
            f.carrier.textContent = u.carrier ? "yes" : "no";
            card_._warn.textContent = u.mptcp && u.mptcp !== "ok" ? "MPTCP " + u.mptcp : "";
            const h = series[u.name];
            if (h && hist) {
              const rx = h.rx_bps, tx = h.tx_bps;
              const lastRx = rx.length ? rx[rx.length - 1] : null, lastTx = tx.length ? tx[tx.length - 1] : null;
              const max = Math.max(1000, ...rx.filter(v => v != null), ...tx.filter(v => v != null));
              const span = Math.min(MAX_WINDOW_MS, Math.max(MIN_WINDOW_MS, hist.ages_ms.length ? hist.ages_ms[0] : 0));
              card_._prx.setAttribute("points", points(rx, hist.ages_ms, max, span));
              card_._ptx.setAttribute("points", points(tx, hist.ages_ms, max, span));
              card_._span.textContent = span >= 120000 ? "−" + Math.round(span / 60000) + " min" : "−" + Math.round(span / 1000) + " s";
              card_.dataset.rxBps = lastRx ?? ""; card_.dataset.txBps = lastTx ?? "";
              card_._rx.textContent = "↓ " + rate(lastRx); card_._tx.textContent = "↑ " + rate(lastTx);
              card_._max.textContent = "max " + rate(max);
              totalRx += lastRx || 0; totalTx += lastTx || 0;
            }
          }
          for (const sec of [...document.getElementById("uplinks").children]) if (!names.has(sec.dataset.name)) sec.remove();
          document.getElementById("total").textContent = "↓ " + rate(totalRx) + "  ↑ " + rate(totalTx);
        }
        async function get(path) {
          const r = await fetch(path, { cache: "no-store" });
          if (!r.ok) throw new Error(path + ": HTTP " + r.status);
          return r.json();
        }
        async function pollStatus() {
          try { doc = await get("status.json"); lastAnswer = Date.now(); document.getElementById("stale").textContent = ""; render(); }
          catch (e) {
            if (lastAnswer) document.getElementById("stale").textContent =
              "no answer from the gateway for " + Math.round((Date.now() - lastAnswer) / 1000) + " s";
          }
          setTimeout(pollStatus, 500);
        }
        async function pollHistory() {
          try { hist = await get("history.json"); render(); } catch (e) {}
          setTimeout(pollHistory, 1000);
        }
        pollStatus(); pollHistory();
        </script>
        </body>
        </html>
        """#
}
