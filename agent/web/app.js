// s3mesh dashboard: polls the agent's JSON API every 2 s and draws the page.
// Every value from the API reaches the DOM through text nodes or
// setAttribute, never parsed as markup: keys may hold anything.
"use strict";

(function () {
  const POLL_MS = 2000;
  const SVGNS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#718096", "#b7791f"];
  const LINK_LABEL = { ok: "ok", stalled: "down (stalled)", never: "never heard", error: "error" };

  // ---- DOM helpers: elements and text nodes only ----

  function add(parent, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) { add(parent, c); continue; }
      parent.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return parent;
  }
  function attrs(e, a) {
    if (a) for (const k of Object.keys(a)) {
      if (a[k] !== null && a[k] !== undefined) e.setAttribute(k, String(a[k]));
    }
    return e;
  }
  function h(tag, a, ...children) { return add(attrs(document.createElement(tag), a), children); }
  function s(tag, a, ...children) { return add(attrs(document.createElementNS(SVGNS, tag), a), children); }
  function fill(id, ...children) {
    const n = document.getElementById(id);
    n.replaceChildren();
    add(n, children);
    return n;
  }
  function table(head, rows) {
    return h("table", null,
      h("thead", null, h("tr", null, head.map((c) => h("th", null, c)))),
      h("tbody", null, rows));
  }
  function none(text) { return h("p", { class: "muted" }, text); }

  // ---- formatting ----

  function secs(v) {
    if (v === null || v === undefined) return "—";
    if (v < 0) return "never";
    if (v < 10) return v.toFixed(1) + " s";
    if (v < 120) return Math.round(v) + " s";
    if (v < 7200) return Math.floor(v / 60) + " min " + Math.round(v % 60) + " s";
    if (v < 172800) return Math.floor(v / 3600) + " h " + Math.round((v % 3600) / 60) + " min";
    return (v / 86400).toFixed(1) + " days";
  }
  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d.getTime()) || d.getUTCFullYear() < 1971) return "—";
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }
  function quoted(key) { return key === undefined || key === null ? "" : JSON.stringify(String(key)); }
  function linkState(p) {
    if (p.error) return "error";
    if (p.silent_for_seconds < 0) return "never";
    if (p.stalled) return "stalled";
    return "ok";
  }
  function badge(state) { return h("span", { class: "badge state-" + state }, LINK_LABEL[state] || state); }
  function version(v) {
    if (!v || !v.origin) return "—";
    const at = when(v.origin_time);
    if (v.deleted) return v.origin + ": delete @ " + at;
    return v.origin + ": " + String(v.etag || "").slice(0, 8) + " (" + v.size + " B) @ " + at;
  }
  function colorOf(peers, name) {
    const i = peers.indexOf(name);
    return COLORS[(i < 0 ? 0 : i) % COLORS.length];
  }

  // ---- sections ----

  function renderHeader(st) {
    fill("site-name", "· site " + st.site);
    document.title = "s3mesh · " + st.site;
  }

  function renderWarnings(st) {
    const ws = st.warnings || [];
    document.getElementById("warnings-card").classList.toggle("has-warnings", ws.length > 0);
    fill("warnings", ws.length ? ws.map((w) => h("li", { class: "warning" }, w)) : h("li", { class: "muted" }, "none"));
  }

  function renderMesh(st) {
    const peers = (st.peers || []).map((p) => p.peer);
    const names = [st.site].concat(peers);
    const W = 420, H = 260, cx = W / 2, cy = H / 2 + 6, r = Math.min(W, H) / 2 - 34;
    const pos = {};
    names.forEach((n, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
      pos[n] = names.length === 1 ? [cx, cy] : [cx + r * 1.35 * Math.cos(a), cy + r * Math.sin(a)];
    });
    const g = s("svg", { viewBox: "0 0 " + W + " " + H, class: "mesh-svg", role: "img", "aria-label": "mesh" });
    // Links between peers: not seen from this site.
    for (let i = 0; i < peers.length; i++) {
      for (let j = i + 1; j < peers.length; j++) {
        const [x1, y1] = pos[peers[i]], [x2, y2] = pos[peers[j]];
        add(g, [s("line", { x1, y1, x2, y2, class: "link link-unseen" })]);
      }
    }
    const labels = [];
    for (const p of st.peers || []) {
      const state = linkState(p);
      const [x1, y1] = pos[st.site], [x2, y2] = pos[p.peer];
      add(g, [s("line", { x1, y1, x2, y2, class: "link link-" + state, "data-peer": p.peer, "data-state": state },
        s("title", null, st.site + " ← " + p.peer + ": " + LINK_LABEL[state]))]);
      const mx = (x1 + x2) / 2, my = (y1 + y2) / 2, text = LINK_LABEL[state];
      labels.push(s("rect", { x: mx - text.length * 3.4 - 4, y: my - 9, width: text.length * 6.8 + 8, height: 17, rx: 4, class: "link-label-bg" }));
      labels.push(s("text", { x: mx, y: my + 4, "text-anchor": "middle", class: "link-label" }, text));
    }
    add(g, labels);
    for (const n of names) {
      const [x, y] = pos[n];
      add(g, [s("g", { class: "node" + (n === st.site ? " self" : ""), "data-site": n },
        s("circle", { cx: x, cy: y, r: 22 }),
        s("text", { x, y: y + 5, "text-anchor": "middle" }, n))]);
    }
    fill("mesh", g);
  }

  function renderPeers(st) {
    const ps = st.peers || [];
    if (!ps.length) { fill("peers", none("no peers")); return; }
    const rows = ps.map((p) => {
      const state = linkState(p);
      const hasWM = Object.prototype.hasOwnProperty.call(p, "watermark") || Object.prototype.hasOwnProperty.call(p, "caught_up");
      const caught = p.caught_up === undefined ? "—" : p.caught_up ? "caught up" : "behind";
      return h("tr", { "data-peer": p.peer, "data-state": state, "data-last-seq": p.last_seq, "data-watermark": p.watermark },
        h("td", null, h("strong", null, p.peer)),
        h("td", { class: "wrap" }, badge(state), p.error ? h("div", { class: "err small" }, p.error) : null),
        h("td", { class: "num last-seq" }, "#" + p.last_seq),
        h("td", { class: "num lag" }, String(p.lag)),
        h("td", { class: "num silent" }, secs(p.silent_for_seconds)),
        h("td", { class: "num pending" }, String(p.pending_apply)),
        h("td", { class: "caught-up " + (p.caught_up ? "yes" : p.caught_up === false ? "no" : "") }, caught),
        h("td", { class: "watermark" }, hasWM ? when(p.watermark) : "—"),
        h("td", { class: "num watermark-age" }, p.watermark_age_seconds === undefined ? "—" : secs(p.watermark_age_seconds)),
        h("td", { class: "rebuild" }, p.needs_rebuild ? h("span", { class: "badge state-error" }, "needs rebuild") : "no"));
    });
    fill("peers", table(["peer", "link", "last record", "mirror lag", "silent for", "waiting", "caught up", "watermark", "watermark age", "rebuild"], rows),
      h("p", { class: "muted small" },
        "mirror lag: records the peer had that this site had not, at last contact (0 while cut: watch silent for). " +
        "waiting: records here not yet applied. watermark: every record the peer made before it is applied here."));
  }

  function renderCharts(st, hist) {
    const peers = (st.peers || []).map((p) => p.peer);
    const samples = (hist && hist.samples) || [];
    const now = Date.parse(st.time) || Date.now();
    const t0 = now - ((hist && hist.window_seconds) || 900) * 1000;
    const series = (get) => peers.map((name) => ({
      name, color: colorOf(peers, name),
      points: samples.map((smp) => {
        const p = (smp.peers || []).find((q) => q.peer === name);
        return [Date.parse(smp.time), p ? get(p) : null];
      }),
    }));
    fill("charts",
      chart("watermark age (s): how far behind each peer's writes this site is", series((p) => p.watermark_age_seconds), t0, now, secs,
        "no watermark reported"),
      chart("silent for (s): time since each peer was last heard", series((p) => (p.silent_for_seconds < 0 ? null : p.silent_for_seconds)), t0, now, secs,
        "no samples yet"),
      chart("records waiting to be applied", series((p) => p.pending_apply), t0, now, (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)),
        "no samples yet"));
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function chart(title, series, t0, t1, fmt, empty) {
    const W = 440, H = 170, L = 52, R = 8, T = 8, B = 22;
    let max = 0, any = false;
    for (const sr of series) for (const [, v] of sr.points) if (v !== null && v !== undefined) { any = true; max = Math.max(max, v); }
    max = niceMax(max);
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    const g = s("svg", { viewBox: "0 0 " + W + " " + H, class: "chart-svg", role: "img", "aria-label": title });
    for (const f of [0, 0.5, 1]) {
      add(g, [s("line", { x1: L, x2: W - R, y1: y(max * f), y2: y(max * f), class: f === 0 ? "axis" : "grid" }),
        s("text", { x: L - 4, y: y(max * f) + 3, "text-anchor": "end", class: "tick" }, fmt(max * f))]);
    }
    for (const m of [15, 10, 5, 0]) {
      const t = t1 - m * 60000;
      add(g, [s("text", { x: x(t), y: H - 6, "text-anchor": m === 0 ? "end" : "middle", class: "tick" }, m === 0 ? "now" : "−" + m + " min")]);
    }
    for (const sr of series) {
      let seg = [];
      const flush = () => {
        if (seg.length === 1) add(g, [s("circle", { cx: seg[0][0], cy: seg[0][1], r: 2, fill: sr.color })]);
        if (seg.length > 1) add(g, [s("polyline", { points: seg.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" "), class: "series", stroke: sr.color })]);
        seg = [];
      };
      for (const [t, v] of sr.points) {
        if (v === null || v === undefined || !(t >= t0)) { flush(); continue; }
        seg.push([x(t), y(Math.min(v, max))]);
      }
      flush();
    }
    if (!any) add(g, [s("text", { x: (L + W - R) / 2, y: H / 2, "text-anchor": "middle", class: "tick" }, empty)]);
    const legend = h("div", { class: "legend" }, series.map((sr) => {
      let last = null;
      for (const [, v] of sr.points) if (v !== null && v !== undefined) last = v;
      return h("span", { "data-peer": sr.name },
        s("svg", { width: 10, height: 10, class: "swatch" }, s("rect", { width: 10, height: 10, rx: 2, fill: sr.color })),
        sr.name + ": " + (last === null ? "—" : fmt(last)));
    }));
    return h("div", { class: "chart" }, h("h3", null, title), g, legend);
  }

  function renderRecent(rec) {
    const d = rec.dead_letters, c = rec.conflicts;
    fill("dlq-count", "(" + d.count + ")");
    fill("dlq", d.latest.length ? table(["id", "last failure", "reason", "from", "bucket", "key", "error"], d.latest.map((e) =>
      h("tr", { "data-id": e.id },
        h("td", { class: "num" }, String(e.id)),
        h("td", null, when(e.last_failure)),
        h("td", null, e.undecodable ? "undecodable entry" : e.reason),
        h("td", null, e.peer || ""),
        h("td", null, e.bucket || ""),
        h("td", { class: "key" }, quoted(e.key)),
        h("td", { class: "err" }, e.undecodable || e.error || "")))) : none("none"),
    d.count > d.latest.length ? h("p", { class: "muted small" }, "latest " + d.latest.length + " of " + d.count + ": s3mesh dlq list") : null);
    fill("conflict-count", "(" + c.count + ")");
    fill("conflicts", c.latest.length ? table(["decided", "bucket", "key", "policy", "outcome", "winner", "loser", "loser kept as"], c.latest.map((e) =>
      h("tr", { "data-seq": e.seq },
        h("td", null, when(e.decided_at)),
        h("td", null, e.bucket || ""),
        h("td", { class: "key" }, e.undecodable ? "undecodable entry: " + e.undecodable : quoted(e.key)),
        h("td", null, e.policy || ""),
        h("td", null, e.outcome || ""),
        h("td", null, version(e.winner)),
        h("td", null, version(e.loser)),
        h("td", { class: "key" }, e.loser_kept_as ? quoted(e.loser_kept_as) : "")))) : none("none"),
    c.count > c.latest.length ? h("p", { class: "muted small" }, "latest " + c.latest.length + " of " + c.count + ": s3mesh conflicts list") : null);
  }

  function renderHeld(st) {
    const hs = st.held_deletes || [];
    fill("held-count", "(" + hs.reduce((n, x) => n + (x.count || 0), 0) + ")");
    fill("held", hs.length ? table(["peer", "bucket", "held", "since"], hs.map((x) =>
      h("tr", { "data-peer": x.peer, "data-bucket": x.bucket },
        h("td", null, x.peer),
        h("td", null, x.bucket),
        h("td", { class: "num no" }, String(x.count)),
        h("td", null, when(x.since))))) : none("no deletes held"));
  }

  function renderScanner(st) {
    const bs = st.buckets || [];
    fill("scanner", bs.length ? table(["bucket", "now", "last scan", "listed", "published", "deleted", "errors", "deletes"], bs.map((b) => {
      const l = b.last_stats || {};
      const held = b.held ? "held since " + when(b.held.since) + " (" + b.held.missing + " of " + b.held.known + " missing)" + (b.held.confirmed ? ", confirmed" : "") : "ok";
      return h("tr", { "data-bucket": b.bucket },
        h("td", null, b.bucket),
        h("td", null, b.scanning ? "scanning: " + b.listed + " listed" : "idle"),
        h("td", null, when(b.last_scan)),
        h("td", { class: "num" }, String(l.listed || 0)),
        h("td", { class: "num" }, String(l.published || 0)),
        h("td", { class: "num" }, String(l.deleted || 0)),
        h("td", { class: "num" }, String(l.errors || 0)),
        h("td", { class: b.held ? "no wrap" : "wrap" }, held));
    })) : none("no buckets"),
    h("p", { class: "muted small", id: "rebuild" }, st.rebuilt_at ? "last rebuild of this site (s3mesh rebuild): " + when(st.rebuilt_at) :
      "this site was never rebuilt"));
  }

  function renderTopology(st) {
    const ts = st.topology || [];
    const filter = (t) => t.filter ? [(t.include || []).length ? "include " + t.include.join(", ") : "", (t.exclude || []).length ? "exclude " + t.exclude.join(", ") : ""].filter(Boolean).join("; ") : "all keys";
    fill("topology", ts.length ? table(["bucket", "mode", "keys", "drift", "deletes kept", "filtered", "peers with other filters"], ts.map((t) => {
      const others = Object.keys(t.peer_filters_differ || {}).sort();
      return h("tr", { "data-bucket": t.bucket, "data-mode": t.mode },
        h("td", null, t.bucket),
        h("td", null, t.mode),
        h("td", { class: "wrap" }, filter(t)),
        h("td", { class: t.drift ? "num no" : "num" }, String(t.drift || 0), t.last_drift ? h("div", { class: "small key" }, "last: " + quoted(t.last_drift)) : null),
        h("td", { class: "num" }, String(t.deletes_kept || 0)),
        h("td", { class: "num" }, String(t.filtered || 0)),
        h("td", { class: others.length ? "no" : "" }, others.length ? others.join(", ") : "none"));
    })) : none("no buckets"),
    h("p", { class: "muted small" }, "replica: applies everything, publishes nothing (a local write is drift). archive: applies puts, keeps what peers delete, publishes nothing."));
  }

  function renderSources(st) {
    const ss = st.sources || [];
    const backlog = st.backlog || {};
    const rows = ss.map((x) => {
      const polls = x.last_polls ? Object.keys(x.last_polls).sort().map((b) => {
        const p = x.last_polls[b];
        return h("div", { class: "small" }, b + ": " + when(p.at) + ", " + secs((p.took_ns || 0) / 1e9) + (p.error ? ", error: " + p.error : ""));
      }) : null;
      return h("tr", { "data-source": x.name }, h("td", null, x.name), h("td", null, x.type), h("td", { class: "wrap" }, x.lag, polls));
    });
    fill("sources", rows.length ? table(["source", "type", "a local change becomes a record"], rows) : none("none"),
      Object.keys(backlog).sort().map((k) => h("p", { class: "small" },
        k + ": " + backlog[k].pending + " events waiting, " + backlog[k].ack_pending + " in progress")));
  }

  function renderStore(st) {
    const c = st.store;
    if (!c) { fill("store", none("not probed yet")); return; }
    const dl = h("dl", { class: "kv" });
    for (const k of Object.keys(c)) {
      const v = c[k];
      if (k === "key_classes") {
        // One line for the classes: cannot_hold names those it does not hold.
        if (!c.cannot_hold || c.cannot_hold.length === 0) {
          add(dl, [h("dt", null, "key classes"), h("dd", null, "holds every class probed (" + v.length + ")")]);
        }
        continue;
      }
      if (k === "cannot_hold") {
        add(dl, [h("dt", null, "cannot hold keys with"), h("dd", { class: "no" }, v.join(", "))]);
        continue;
      }
      const text = v === true ? "yes" : v === false ? "no" : Array.isArray(v) ? v.join("; ") : String(v);
      add(dl, [h("dt", null, k.replace(/_/g, " ")), h("dd", { class: v === false ? "no" : "" }, text)]);
    }
    fill("store", dl);
  }

  // ---- polling ----

  async function getJSON(path) {
    const r = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(path + ": HTTP " + r.status + " " + (await r.text()).trim());
    return r.json();
  }

  function setConn(cls, text) {
    const c = document.getElementById("conn");
    c.className = "conn " + cls;
    c.textContent = text;
  }

  function section(id, fn) {
    try { fn(); } catch (e) { fill(id, h("p", { class: "err" }, "cannot draw: " + e.message)); }
  }

  let failingSince = null;

  async function tick() {
    const [st, hist, rec] = await Promise.allSettled([getJSON("api/status"), getJSON("api/history"), getJSON("api/recent")]);
    if (st.status === "fulfilled") {
      const v = st.value;
      failingSince = null;
      section("site-name", () => renderHeader(v));
      section("warnings", () => renderWarnings(v));
      section("mesh", () => renderMesh(v));
      section("peers", () => renderPeers(v));
      section("charts", () => renderCharts(v, hist.status === "fulfilled" ? hist.value : null));
      section("held", () => renderHeld(v));
      section("scanner", () => renderScanner(v));
      section("topology", () => renderTopology(v));
      section("sources", () => renderSources(v));
      section("store", () => renderStore(v));
      setConn("conn-live", "live · " + new Date().toLocaleTimeString());
      document.body.setAttribute("data-ready", "1");
    } else {
      failingSince = failingSince || new Date();
      setConn("conn-down", "agent unreachable since " + failingSince.toLocaleTimeString() + ": " + st.reason.message);
    }
    if (rec.status === "fulfilled") section("dlq", () => renderRecent(rec.value));
    else fill("dlq", h("p", { class: "err" }, String(rec.reason.message)));
  }

  async function loop() {
    try { await tick(); } catch (e) { setConn("conn-down", "error: " + e.message); }
    setTimeout(loop, POLL_MS);
  }

  loop();
})();
