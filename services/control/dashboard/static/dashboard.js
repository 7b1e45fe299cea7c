// The smsflow dashboard: renders each snapshot the server pushes (server-sent events).
// Text goes in with textContent only, never as HTML.
"use strict";

const COUNTS = ["enrolled", "queued", "deferred", "sent", "delivered", "undelivered", "failed", "skipped"];
const SERIES = { sent: "#2f6fdf", delivered: "#16794a", failed: "#b42318", skipped: "#c08a00" };

function cell(row, text, className) {
  const td = document.createElement(row.parentElement && row.parentElement.tagName === "THEAD" ? "th" : "td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fill(tbody, items, build) {
  const rows = items.map((item) => {
    const tr = document.createElement("tr");
    build(tr, item);
    return tr;
  });
  tbody.replaceChildren(...rows);
}

function renderWorkflows(snapshot) {
  const reasons = [...new Set(snapshot.rows.flatMap((r) => Object.keys(r.skipped_by_reason)))].sort();
  const head = document.querySelector("#workflows thead tr");
  head.replaceChildren();
  ["account", "workflow"].forEach((name) => cell(head, name));
  COUNTS.forEach((name) => cell(head, name, "num"));
  reasons.forEach((reason) => cell(head, `skipped: ${reason}`, "num"));
  fill(document.querySelector("#workflows tbody"), snapshot.rows, (tr, row) => {
    tr.dataset.row = `${row.account_id}/${row.workflow_id}`;
    cell(tr, row.account_id);
    cell(tr, row.workflow_id);
    COUNTS.forEach((name) => { cell(tr, row[name], "num").dataset.col = name; });
    reasons.forEach((reason) => {
      cell(tr, row.skipped_by_reason[reason] || 0, "num").dataset.col = `skipped:${reason}`;
    });
  });
}

function renderChart(series) {
  const canvas = document.getElementById("per-minute");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const names = Object.keys(SERIES);
  const top = Math.max(1, ...names.flatMap((n) => series[n]));
  ctx.strokeStyle = "#e4e7ec"; ctx.fillStyle = "#667085"; ctx.font = "11px system-ui";
  ctx.beginPath(); ctx.moveTo(pad, h - pad); ctx.lineTo(w - 4, h - pad); ctx.stroke();
  ctx.fillText(String(top), 2, pad); ctx.fillText("0", 2, h - pad);
  ctx.fillText("-60 min", pad, h - 8); ctx.fillText("now", w - 30, h - 8);
  const n = series.minutes.length;
  names.forEach((name) => {
    ctx.strokeStyle = SERIES[name]; ctx.lineWidth = 2; ctx.beginPath();
    series[name].forEach((v, i) => {
      const x = pad + (i * (w - pad - 6)) / Math.max(1, n - 1);
      const y = h - pad - (v * (h - 2 * pad)) / top;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
  const legend = document.getElementById("legend");
  legend.replaceChildren(...names.map((name) => {
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = SERIES[name];
    span.append(swatch, `${name} ${series[name][n - 1] || 0}/min now`);
    return span;
  }));
}

function render(snapshot) {
  renderWorkflows(snapshot);
  renderChart(snapshot.per_minute);
  fill(document.querySelector("#latest tbody"), snapshot.latest, (tr, e) => {
    cell(tr, e.at.slice(11, 19));
    cell(tr, e.account_id); cell(tr, e.contact_id); cell(tr, e.workflow_id);
    cell(tr, e.to || "");
    cell(tr, e.status, `status-${e.status}`);
    cell(tr, e.reason || "");
  });
  fill(document.querySelector("#dead-letters tbody"), Object.entries(snapshot.dead_letters), (tr, [where, count]) => {
    cell(tr, where); cell(tr, count, "num");
  });
  document.getElementById("dead-letters-total").textContent = String(snapshot.dead_letters_total);
  fill(document.querySelector("#lag tbody"), Object.entries(snapshot.lag), (tr, [service, lag]) => {
    tr.dataset.service = service;
    cell(tr, service); cell(tr, lag, "num");
  });
  document.getElementById("events-seen").textContent = `${snapshot.events} events`;
}

function connect() {
  const status = document.getElementById("connection");
  const source = new EventSource("/events");
  source.onopen = () => { status.textContent = "live"; status.className = "live"; };
  source.onmessage = (message) => render(JSON.parse(message.data));
  source.onerror = () => { status.textContent = "reconnecting…"; status.className = "offline"; };
}

connect();
