// The cluster dashboard: GET / serves one self-contained HTML page (inline CSS
// and JavaScript, nothing fetched from elsewhere) that polls GET
// /cluster/overview every second and shows this node's view of the cluster:
// the leader, the members and their roles, term, commit and applied index,
// and a sparkline of recent throughput.
//
// Throughput is sampled here, without a timer: a request to /cluster/overview
// records (time, applied index) when the last sample is at least ~1 s old, and
// the answer carries the entries applied per second between consecutive
// samples of the last 60 s. The dashboard polls every second, so while anyone
// watches the history has one-second resolution, survives page reloads and is
// shared by every viewer.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>

#include <nlohmann/json.hpp>

#include "catga/http.hpp"

namespace catga::http {
namespace {

using nlohmann::json;

// A voter that has not answered the leader for this long shows as unreachable
// (the threshold /health uses).
constexpr std::chrono::seconds kStaleContact{5};

// Entries applied per second, from (time, applied index) samples taken at most
// about once a second and kept for a minute.
class ThroughputHistory {
 public:
  static constexpr std::chrono::seconds kWindow{60};
  // Slightly under a second, so that a client polling every second (with some
  // jitter) gets a sample on every poll.
  static constexpr std::chrono::milliseconds kMinSpacing{900};
  static constexpr std::size_t kMaxSamples = 128;

  // Records `applied` if the last sample is old enough and returns the history:
  // {"window_s": 60, "points": [{"at_ms": <unix ms>, "per_second": <rate>}, ...]}.
  // `wall`: the overview's own time_ms, so that no point is newer than it.
  json sample(std::uint64_t applied, std::int64_t wall) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    if (samples_.empty() || now - samples_.back().at >= kMinSpacing) samples_.push_back({now, wall, applied});
    // Keep the samples the points of the window need (a point needs its predecessor).
    while (samples_.size() > kMaxSamples || (samples_.size() > 1 && now - samples_[1].at > kWindow)) {
      samples_.pop_front();
    }
    json points = json::array();
    for (std::size_t i = 1; i < samples_.size(); ++i) {
      const auto& before = samples_[i - 1];
      const auto& after = samples_[i];
      const double seconds = std::chrono::duration<double>(after.at - before.at).count();
      const std::uint64_t applied_since = after.applied > before.applied ? after.applied - before.applied : 0;
      const double rate = seconds > 0 ? static_cast<double>(applied_since) / seconds : 0.0;
      points.push_back({{"at_ms", after.wall_ms}, {"per_second", std::round(rate * 10) / 10}});
    }
    return {{"window_s", kWindow.count()}, {"points", std::move(points)}};
  }

 private:
  struct Sample {
    std::chrono::steady_clock::time_point at;
    std::int64_t wall_ms = 0;
    std::uint64_t applied = 0;
  };
  std::mutex mu_;
  std::deque<Sample> samples_;
};

bool leader_known(const NodeStatus& s) { return s.role == NodeRole::leader || s.leader_id != 0; }

json overview_json(const NodeStatus& s, bool replicated) {
  const std::uint64_t leader_id = s.role == NodeRole::leader && s.leader_id == 0 ? s.id : s.leader_id;
  json members = json::array();
  for (const auto& m : s.members) {
    const bool self = m.member.id == s.id;
    json member = {{"id", m.member.id},
                   {"address", m.member.address},
                   {"peer_address", m.member.peer_address},
                   {"role", to_string(m.member.role)},
                   {"is_leader", leader_known(s) && m.member.id == leader_id},
                   {"is_self", self}};
    member["last_contact_ms"] = m.last_contact ? json(m.last_contact->count()) : json(nullptr);
    // Known only where the node reports a last contact (a leader hears from
    // every member); null elsewhere.
    if (self) {
      member["reachable"] = true;
    } else if (s.role == NodeRole::leader && m.last_contact) {
      member["reachable"] = *m.last_contact <= kStaleContact;
    } else {
      member["reachable"] = nullptr;
    }
    members.push_back(std::move(member));
  }
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  return {{"id", s.id},
          {"address", s.address},
          {"replicated", replicated},
          {"role", to_string(s.role)},
          {"term", s.term},
          {"leader", {{"id", leader_id}, {"address", s.leader_address}, {"known", leader_known(s)}}},
          {"commit_index", s.commit_index},
          {"applied_index", s.applied_index},
          {"last_snapshot_index", s.last_snapshot_index},
          {"ready", s.ready},
          {"members", std::move(members)},
          {"failure", s.failure},
          {"time_ms", now_ms}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The page may run its own inline script and style and talk to this origin;
// nothing else (no external scripts, fonts, images or frames).
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

constexpr std::string_view kPage = R"catga_page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Catga cluster</title>
<style>
:root {
  --bg: #f3f5f8; --card: #fff; --ink: #1b2430; --muted: #687486; --line: #e2e7ee;
  --leader: #188a4b; --follower: #2d6bd8; --candidate: #c27c00; --down: #cf3d3d; --accent: #2d6bd8;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
header { background: #151c27; color: #e9eef6; padding: 16px 32px; display: flex; align-items: center; gap: 20px; }
header h1 { margin: 0; font-size: 18px; font-weight: 600; letter-spacing: .2px; }
header h1 span { color: #7f93ad; font-weight: 400; }
#leader { color: #c9d6e8; font-size: 14px; }
#leader.none { color: #ffb4a8; }
.spacer { flex: 1; }
#updated { color: #8fa2bb; font-size: 12px; font-variant-numeric: tabular-nums; }
.pill { display: inline-flex; align-items: center; gap: 7px; padding: 3px 11px; border-radius: 999px;
        font-size: 12px; font-weight: 600; background: #26324a; color: #b9c9e4; }
.pill::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: currentColor; }
.pill.live { color: #5fe09a; background: #123122; }
.pill.down { color: #ff8f8f; background: #3b1818; }
main { padding: 22px 32px 28px; max-width: 1240px; margin: 0 auto; }
main.stale .card, main.stale .panel { opacity: .5; }
#notice { display: none; margin-bottom: 16px; padding: 10px 14px; border-radius: 8px;
          background: #fff6e0; border: 1px solid #f0d48a; color: #6b4d00; }
#notice.show { display: block; }
#notice.bad { background: #fdecec; border-color: #f1b0b0; color: #7d1f1f; }
.cards { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 14px; }
.card, .panel { background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
.card { padding: 13px 18px 15px; }
.label { color: var(--muted); font-size: 11.5px; text-transform: uppercase; letter-spacing: .7px; }
.value { margin-top: 3px; font-size: 27px; font-weight: 600; font-variant-numeric: tabular-nums;
         white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.value small { font-size: 13px; font-weight: 500; color: var(--muted); margin-left: 4px; }
.role-leader { color: var(--leader); } .role-follower { color: var(--follower); }
.role-candidate { color: var(--candidate); } .role-unavailable { color: var(--down); }
.panel { margin-top: 16px; padding: 14px 18px 16px; }
.panel h2 { margin: 0 0 10px; font-size: 13px; font-weight: 600; color: var(--ink); display: flex; gap: 12px; }
.panel h2 .hint { color: var(--muted); font-weight: 400; }
#sparkline { display: block; width: 100%; height: 120px; }
#sparkline .grid { stroke: var(--line); stroke-width: 1; }
#sparkline .area { fill: rgba(45, 107, 216, .12); }
#sparkline .line { fill: none; stroke: var(--accent); stroke-width: 2; stroke-linejoin: round; }
#sparkline .dot { fill: var(--accent); }
#sparkline text { fill: var(--muted); font-size: 11px; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; color: var(--muted); font-size: 11.5px; font-weight: 600; text-transform: uppercase;
     letter-spacing: .6px; padding: 6px 10px; border-bottom: 1px solid var(--line); }
td { padding: 9px 10px; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom: 0; }
td.mono { font-family: "DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
.badge { display: inline-block; margin-right: 6px; padding: 1px 8px; border-radius: 999px; font-size: 11.5px;
         font-weight: 600; border: 1px solid transparent; }
.badge.leader { color: #fff; background: var(--leader); }
.badge.follower { color: var(--follower); border-color: #bcd0f3; background: #eef3fd; }
.badge.self { color: #3c4655; border-color: #cfd6e0; background: #f5f7fa; }
.badge.other { color: var(--muted); border-color: var(--line); }
.ok { color: var(--leader); } .bad { color: var(--down); } .muted { color: var(--muted); }
footer { margin-top: 14px; color: var(--muted); font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>Catga <span>cluster</span></h1>
  <div id="leader">connecting&hellip;</div>
  <div class="spacer"></div>
  <div id="updated">not updated yet</div>
  <div id="conn" class="pill">connecting</div>
</header>
<main id="main">
  <div id="notice"></div>
  <section class="cards">
    <div class="card"><div class="label">This node</div><div class="value" id="role">&ndash;</div></div>
    <div class="card"><div class="label">Term</div><div class="value" id="term">&ndash;</div></div>
    <div class="card"><div class="label">Commit index</div><div class="value" id="commit-index">&ndash;</div></div>
    <div class="card"><div class="label">Applied index</div><div class="value" id="applied-index">&ndash;</div></div>
    <div class="card"><div class="label">Throughput</div>
      <div class="value"><span id="throughput">&ndash;</span><small>applied/s</small></div></div>
  </section>
  <section class="panel">
    <h2>Entries applied per second <span class="hint">last 60 s</span><span class="spacer"></span>
      <span class="hint" id="peak"></span></h2>
    <svg id="sparkline" role="img" aria-label="entries applied per second over the last minute"></svg>
  </section>
  <section class="panel">
    <h2>Members <span class="hint" id="members-hint"></span></h2>
    <table id="members">
      <thead><tr><th>Node</th><th>Raft address</th><th>Membership</th><th>Status</th><th>Last contact</th></tr></thead>
      <tbody id="members-body"><tr><td colspan="5" class="muted">waiting for the first answer&hellip;</td></tr></tbody>
    </table>
  </section>
  <footer>Served by <span id="node">this node</span>. The page polls <code>/cluster/overview</code>
    every second; the members table is this node's view of the configuration.</footer>
</main>
<script>
"use strict";
(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const POLL_MS = 1000, TIMEOUT_MS = 3000;
  const $ = (id) => document.getElementById(id);
  let lastOk = null;

  const num = (n) => Number(n).toLocaleString("en-US");
  const rate = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const clock = (d) => d.toLocaleTimeString("en-GB");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setConnection(ok, why) {
    const c = $("conn");
    c.className = "pill " + (ok ? "live" : "down");
    c.textContent = ok ? "live" : "unreachable";
    c.title = ok ? "" : String(why || "");
    $("main").classList.toggle("stale", !ok);
    $("updated").textContent = lastOk ? "updated " + clock(lastOk) + (ok ? "" : " (stale)") : "never updated";
  }

  function renderHeader(o) {
    const leader = $("leader");
    leader.className = "";
    if (!o.replicated) {
      leader.textContent = "in-memory application \u00b7 not replicated";
    } else if (o.leader.known) {
      const at = o.leader.address ? " \u00b7 " + o.leader.address : "";
      leader.textContent = "leader: node " + o.leader.id + at + " \u00b7 term " + num(o.term);
    } else {
      leader.className = "none";
      leader.textContent = "no leader known \u00b7 term " + num(o.term);
    }
    const notice = $("notice");
    let msg = "", bad = false;
    if (o.failure) { msg = "This node stopped: " + o.failure; bad = true; }
    else if (o.replicated && !o.leader.known) msg = "No leader is known: an election may be under way, or a majority is unreachable.";
    else if (o.applied_index < o.commit_index) msg = "Catching up: applied " + num(o.applied_index) + " of " + num(o.commit_index) + " committed entries.";
    else if (o.role === "leader" && !o.ready) msg = "New leader: waiting for an entry of its term to commit.";
    notice.textContent = msg;
    notice.className = msg ? "show" + (bad ? " bad" : "") : "";
    document.title = "Catga \u00b7 node " + o.id + " \u00b7 " + o.role;
    $("node").textContent = "node " + o.id + (o.address ? " (" + o.address + ")" : "");
  }

  function renderMembers(o) {
    const body = $("members-body");
    body.replaceChildren();
    $("members-hint").textContent = o.members.length ? o.members.length + (o.members.length === 1 ? " member" : " members") : "";
    if (!o.members.length) {
      const tr = el("tr");
      const td = el("td", "muted", "An in-memory application has no Raft members: one process, no log.");
      td.colSpan = 5;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    for (const m of o.members) {
      const tr = el("tr");
      tr.dataset.id = m.id;
      tr.appendChild(el("td", "", "node " + m.id));
      tr.appendChild(el("td", "mono", m.address));
      tr.appendChild(el("td", "", m.role));
      const status = el("td");
      if (m.is_leader) status.appendChild(el("span", "badge leader", "leader"));
      else if (m.is_self) status.appendChild(el("span", "badge " + (o.role === "follower" ? "follower" : "other"), o.role));
      else if (m.role === "voter" && o.leader.known) status.appendChild(el("span", "badge follower", "follower"));
      else status.appendChild(el("span", "badge other", m.role));
      if (m.is_self) status.appendChild(el("span", "badge self", "this node"));
      tr.appendChild(status);
      let contact;
      if (m.is_self) contact = el("td", "muted", "\u2013");
      else if (m.reachable === true) contact = el("td", "ok", num(m.last_contact_ms) + " ms ago");
      else if (m.reachable === false) contact = el("td", "bad", "unreachable \u00b7 " + num(Math.round(m.last_contact_ms / 1000)) + " s ago");
      else contact = el("td", "muted", "\u2013");
      tr.appendChild(contact);
      body.appendChild(tr);
    }
  }

  function renderThroughput(o) {
    const t = o.throughput, pts = t.points, box = $("sparkline");
    const w = Math.max(box.clientWidth || 1000, 200), h = 120, top = 14, bottom = 18, left = 4, right = 4;
    box.setAttribute("viewBox", "0 0 " + w + " " + h);
    box.replaceChildren();
    const peak = pts.reduce((m, p) => Math.max(m, p.per_second), 0);
    const scale = Math.max(peak, 1) * 1.15;
    const x = (at) => left + (w - left - right) * (1 - (o.time_ms - at) / (t.window_s * 1000));
    const y = (v) => h - bottom - (h - top - bottom) * (v / scale);
    box.appendChild(svg("line", { class: "grid", x1: left, x2: w - right, y1: y(0), y2: y(0) }));
    box.appendChild(svg("line", { class: "grid", x1: left, x2: w - right, y1: top, y2: top, "stroke-dasharray": "3 4" }));
    box.appendChild(svg("text", { x: left, y: h - 3 }, t.window_s + " s ago"));
    box.appendChild(svg("text", { x: w - right, y: h - 3, "text-anchor": "end" }, "now"));
    box.appendChild(svg("text", { x: w - right, y: top - 3, "text-anchor": "end" }, rate(scale) + "/s"));
    $("peak").textContent = pts.length ? "peak " + rate(peak) + "/s" : "";
    if (!pts.length) {
      $("throughput").textContent = "\u2013";
      box.appendChild(svg("text", { x: w / 2, y: h / 2, "text-anchor": "middle" }, "measuring\u2026 (a point per second while the page is open)"));
      return;
    }
    const xy = pts.map((p) => [Math.max(x(p.at_ms), left), y(p.per_second)]);
    if (xy.length === 1) xy.unshift([Math.max(xy[0][0] - 8, left), xy[0][1]]);
    const line = xy.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
    const area = line + " L" + xy[xy.length - 1][0].toFixed(1) + " " + y(0) + " L" + xy[0][0].toFixed(1) + " " + y(0) + " Z";
    box.appendChild(svg("path", { class: "area", d: area }));
    box.appendChild(svg("path", { class: "line", id: "sparkline-line", d: line }));
    const last = xy[xy.length - 1];
    box.appendChild(svg("circle", { class: "dot", cx: last[0], cy: last[1], r: 3.5 }));
    $("throughput").textContent = rate(pts[pts.length - 1].per_second);
  }

  function render(o) {
    const role = $("role");
    role.textContent = o.role;
    role.className = "value role-" + o.role;
    $("term").textContent = num(o.term);
    $("commit-index").textContent = num(o.commit_index);
    $("applied-index").textContent = num(o.applied_index);
    renderHeader(o);
    renderMembers(o);
    renderThroughput(o);
  }

  async function poll() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    try {
      const r = await fetch("cluster/overview", { cache: "no-store", signal: abort.signal });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const o = await r.json();
      render(o);
      lastOk = new Date();
      setConnection(true);
    } catch (e) {
      setConnection(false, e && e.message);
    } finally {
      clearTimeout(timer);
      setTimeout(poll, POLL_MS);
    }
  }
  poll();
})();
</script>
</body>
</html>
)catga_page";

}  // namespace

Server& Server::map_dashboard() {
  auto history = std::make_shared<ThroughputHistory>();
  get("/cluster/overview", [this, history](const Request&, Responder responder) {
    const NodeStatus s = app_.status();
    json body = overview_json(s, app_.replicated());
    body["throughput"] = history->sample(s.applied_index, body["time_ms"].get<std::int64_t>());
    responder.json(200, dump(body), {{"Cache-Control", "no-store"}});
  });
  get("/", [](const Request&, Responder responder) {
    responder.send(200, std::string(kPage), "text/html; charset=utf-8",
                   {{"Cache-Control", "no-cache"},
                    {"Content-Security-Policy", std::string(kContentSecurityPolicy)},
                    {"X-Content-Type-Options", "nosniff"}});
  });
  return *this;
}

}  // namespace catga::http
