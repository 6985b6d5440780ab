// The live view: status table, one plot per stream, buttons. Talks only to this server's API.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const TOKEN = params.get("token");
  const RUN = params.get("run");
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
  const plots = new Map(); // stream name -> {el, plot, key, picked, kind}
  let mode = null;
  let lastStatus = null;

  function url(path, extra) {
    const q = new URLSearchParams(extra || {});
    if (TOKEN) q.set("token", TOKEN);
    if (RUN) q.set("run", RUN);
    const s = q.toString();
    return path + (s ? "?" + s : "");
  }
  async function getJson(path, extra) {
    const r = await fetch(url(path, extra), { cache: "no-store" });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }
  function say(text) { document.getElementById("message").textContent = text || ""; }
  function fmt(n, digits) {
    if (n === null || n === undefined) return "–";
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + "M";
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return Number(n).toFixed(digits || 0);
  }
  function mib(b) { return (b / 1048576).toFixed(1) + " MiB"; }
  function windowSeconds() { return document.getElementById("window").value; }

  function renderStatus(s) {
    lastStatus = s;
    mode = s.mode;
    document.getElementById("title").textContent = (s.experiment || "ensemble") + (s.mode === "live" ? " · live" : "");
    let summary = s.run_id || "";
    if (s.mode === "live") {
      summary += " · elapsed " + fmt(s.elapsed_s, 1) + " s";
      if (s.remaining_s !== null && s.remaining_s !== undefined) summary += " · remaining " + fmt(s.remaining_s, 1) + " s";
    } else {
      summary += " · status " + s.status;
    }
    const plan = s.plan;
    if (plan && plan.phase && plan.phase !== "idle") {
      summary += " · plan " + plan.phase + (plan.cause ? " (" + plan.cause + ")" : "");
      summary += " · points " + plan.points_done + (plan.points_total === null || plan.points_total === undefined ? "" : " of " + plan.points_total);
    }
    document.getElementById("summary").textContent = summary;
    if (s.mode === "files" && s.unrecovered) say(s.unrecovered);
    const live = s.mode === "live";
    document.getElementById("stop").disabled = !live;
    document.getElementById("pause").disabled = !(live && s.can_pause && !s.paused);
    document.getElementById("resume").disabled = !(live && s.can_pause && s.paused);
    const tbody = document.querySelector("#status tbody");
    tbody.innerHTML = "";
    for (const c of s.components || []) {
      const tr = document.createElement("tr");
      const cells = [c.name, c.type, c.state, fmt(c.rows), c.rate_hz === null || c.rate_hz === undefined ? "–" : fmt(c.rate_hz) + "/s",
        c.queue_depth === undefined ? "–" : c.queue_depth, fmt(c.dropped_rows), c.restarts === undefined ? "–" : c.restarts];
      cells.forEach((v, i) => {
        const td = document.createElement("td");
        td.textContent = v;
        if (i === 2) td.className = "state-" + v;
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
      ensurePlot(c);
    }
    const m = s.memory;
    document.getElementById("memory").textContent = m
      ? "memory in flight " + mib(m.in_flight_bytes) + " of " + mib(m.in_flight_limit_bytes) + " (cap " + mib(m.cap_bytes) + "); view " + mib(m.view_held_bytes) + " of its " + mib(m.view_budget_bytes) + " budget"
      : "";
  }

  function ensurePlot(c) {
    if (plots.has(c.stream)) return;
    const el = document.createElement("div");
    el.className = "plot";
    el.dataset.stream = c.stream;
    el.dataset.points = "0";
    const h = document.createElement("h3");
    h.innerHTML = "<span></span><span class=info></span>";
    h.firstChild.textContent = c.stream;
    el.appendChild(h);
    const entry = { el, plot: null, key: "", picked: null, kind: c.kind, channels: c.channels || [] };
    if (entry.channels.length > 8) {
      const sel = document.createElement("select");
      sel.multiple = true;
      sel.size = 1;
      entry.channels.forEach((ch, i) => {
        const o = document.createElement("option");
        o.value = ch.name; o.textContent = ch.name; o.selected = i < 8;
        sel.appendChild(o);
      });
      sel.onchange = () => { entry.picked = Array.from(sel.selectedOptions).map(o => o.value); refresh(c.stream); };
      h.appendChild(sel);
    }
    const box = document.createElement("div");
    el.appendChild(box);
    entry.box = box;
    document.getElementById("plots").appendChild(el);
    plots.set(c.stream, entry);
    refresh(c.stream);
  }

  function draw(name, d) {
    const entry = plots.get(name);
    if (!entry) return;
    const logy = document.getElementById("logy").checked;
    const time = d.kind === "time";
    const xs = time ? d.t_ns.map(t => t / 1e9) : d.x;
    const data = [xs];
    const series = [{ label: time ? "time" : d.x_label + (d.x_unit ? " (" + d.x_unit + ")" : "") }];
    const bands = [];
    d.series.forEach((tr, i) => {
      const ch = d.picked[i];
      const color = COLORS[i % COLORS.length];
      const label = ch.name + (ch.unit ? " (" + ch.unit + ")" : "");
      if (d.kind === "scan") {
        data.push(tr.last);
        series.push({ label, stroke: color, points: { show: true, size: 6 }, width: 1 });
        return;
      }
      const base = data.length;
      data.push(tr.max, tr.min, tr.last);
      series.push({ label: label + " max", stroke: color + "55", width: 1 });
      series.push({ label: label + " min", stroke: color + "55", width: 1 });
      series.push({ label: label + " last", stroke: color, width: 1.5 });
      bands.push({ series: [base, base + 1], fill: color + "33" });
    });
    const units = [...new Set(d.picked.map(p => p.unit).filter(Boolean))].join(", ");
    const key = d.kind + "|" + series.map(s => s.label).join("|") + "|" + (d.kind === "spectrum" && logy);
    const sampled = d.kind === "time" && d.folded_share < 1
      ? " · sampled: " + (100 * d.folded_share).toFixed(d.folded_share < 0.1 ? 1 : 0) + "% of rows (stream faster than the view folds; data complete on disk)"
      : "";
    let info = d.kind === "time" ? "min–max envelope per bucket · " + fmt(d.rows) + " rows · " + d.source + sampled
      : d.kind === "spectrum" ? "latest spectrum · " + d.source
      : "points " + fmt(d.points_done) + " of " + fmt(d.points_total);
    entry.el.querySelector(".info").textContent = info;
    if (!entry.plot || entry.key !== key) {
      if (entry.plot) entry.plot.destroy();
      const opts = {
        width: Math.max(560, entry.el.clientWidth - 12), height: 260,
        scales: { x: { time }, y: { distr: d.kind === "spectrum" && logy ? 3 : 1 } },
        axes: [{}, { label: units, size: 70 }],
        series, bands,
        legend: { live: false },
      };
      entry.plot = new uPlot(opts, data, entry.box);
      entry.key = key;
    } else {
      entry.plot.setData(data);
    }
    entry.el.dataset.points = String(xs.length);
    entry.el.dataset.kind = d.kind;
    entry.el.dataset.yscale = d.kind === "spectrum" && logy ? "log" : "linear";
  }

  async function refresh(name) {
    const entry = plots.get(name);
    if (!entry) return;
    const extra = { seconds: windowSeconds(), points: 2000 };
    if (entry.picked) extra.channels = entry.picked.join(",");
    try {
      draw(name, await getJson("/api/streams/" + encodeURIComponent(name), extra));
    } catch (e) {
      say(name + ": " + e.message);
    }
  }
  function usesEvents(entry) { return mode === "live" && windowSeconds() === "10" && !entry.picked; }

  async function control(action) {
    try {
      const r = await fetch(url("/api/" + action), { method: "POST" });
      const body = await r.json();
      say(r.ok ? action + " requested" : body.error);
    } catch (e) { say(action + ": " + e.message); }
  }
  document.getElementById("stop").onclick = () => control("stop");
  document.getElementById("pause").onclick = () => control("pause");
  document.getElementById("resume").onclick = () => control("resume");
  document.getElementById("window").onchange = () => plots.forEach((_, n) => refresh(n));
  document.getElementById("logy").onchange = () => plots.forEach((_, n) => refresh(n));

  function showRuns(runs) {
    document.getElementById("runs").hidden = false;
    document.getElementById("statusbox").hidden = true;
    const tbody = document.querySelector("#runs tbody");
    for (const r of runs) {
      const tr = document.createElement("tr");
      const a = document.createElement("a");
      const q = new URLSearchParams({ run: r.run_id });
      if (TOKEN) q.set("token", TOKEN);
      a.href = "/?" + q.toString();
      a.textContent = r.run_id;
      const td0 = document.createElement("td");
      td0.appendChild(a);
      tr.appendChild(td0);
      for (const v of [r.experiment, r.status + (r.unrecovered ? " (unrecovered)" : ""), r.started_at, r.duration_s === null ? "–" : fmt(r.duration_s, 1) + " s", r.streams.join(", "), fmt(r.rows)]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
  }

  async function start() {
    let s;
    try { s = await getJson("/api/status"); } catch (e) { say(e.message); return; }
    if (s.mode === "runs") { showRuns(s.runs); return; }
    renderStatus(s);
    if (s.mode !== "live") return;
    const events = new EventSource(url("/api/events"));
    events.addEventListener("update", ev => {
      const msg = JSON.parse(ev.data);
      if (msg.status) renderStatus(msg.status);
      for (const [name, d] of Object.entries(msg.streams || {})) {
        const entry = plots.get(name);
        if (entry && usesEvents(entry)) draw(name, d);
      }
    });
    events.onerror = () => say("connection to the run lost (it may have ended); the page shows the last data");
    setInterval(() => plots.forEach((entry, n) => { if (!usesEvents(entry)) refresh(n); }), 1000);
  }
  start();
})();
