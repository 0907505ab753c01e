// The operator console page: one EventSource, state kept here, the table re-drawn at most 4 times a second.
"use strict";
const $ = (id) => document.getElementById(id);
const S = {atms: new Map(), alarms: new Map(), txns: [], cmds: new Map(), totals: null, csrf: "",
  detail: null, detailGen: 0, dirty: true, msgs: [], lastMsgs: null};
const MAX_ROWS = 300;  // a table of 10,000 rows helps no-one: filter to narrow

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
const fmtTime = (ms) => ms ? new Date(ms).toLocaleTimeString([], {hour12: false}) : "–";
const fmtNum = (n) => (n === null || n === undefined) ? "–" : Number(n).toLocaleString("en-US");
const fmtPct = (r) => (r === null || r === undefined) ? "–" : (r * 100).toFixed(2) + "%";
function ago(ms) {
  if (!ms) return "–";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? s + "s" : s < 3600 ? Math.round(s / 60) + "m" : Math.round(s / 3600) + "h";
}

async function api(path, body) {
  const opt = body === undefined ? {} : {method: "POST", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json", "X-CSRF-Token": S.csrf}};
  const r = await fetch(path, opt);
  if (r.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

// ----- stream -----------------------------------------------------------------------------------------
function applyBatch(b) {
  for (const a of b.atms || []) S.atms.set(a.atm_id, a);
  for (const a of b.alarms || []) {
    if (!a.active && a.acked_by) S.alarms.delete(a.alarm_id); else S.alarms.set(a.alarm_id, a);
  }
  for (const t of b.txns || []) S.txns.unshift(t);
  S.txns.length = Math.min(S.txns.length, 100);
  for (const c of b.cmds || []) S.cmds.set(c.command_id, c);
  if (b.totals) {
    const st = b.totals.stats;
    if (S.lastMsgs) S.rate = (st.messages - S.lastMsgs.n) / ((Date.now() - S.lastMsgs.t) / 1000);
    S.lastMsgs = {n: st.messages, t: Date.now()};
    S.totals = b.totals;
  }
  if (b.brokers) for (const x of b.brokers) { if (S.totals) S.totals.broker_up = x.up; }
  // The open drawer follows its ATM: a new event or command result, or a changed state or link.
  const shown = S.detailShown;
  if (S.detail && ((b.events || []).some((e) => e.atm_id === S.detail) ||
      (b.cmds || []).some((c) => c.atm_id === S.detail) ||
      (b.atms || []).some((a) => a.atm_id === S.detail && (!shown || a.state !== shown.state ||
        a.online !== shown.online)))) loadDetail(S.detail);
  S.dirty = true;
}

function connect() {
  const es = new EventSource("/api/stream");
  es.addEventListener("snapshot", (ev) => {
    const s = JSON.parse(ev.data);
    S.atms.clear(); S.alarms.clear(); S.cmds.clear();
    for (const a of s.atms) S.atms.set(a.atm_id, a);
    for (const a of s.alarms) S.alarms.set(a.alarm_id, a);
    for (const c of s.cmds.slice().reverse()) S.cmds.set(c.command_id, c);
    S.txns = s.txns; S.totals = s.totals; S.dirty = true;
    $("conn").classList.add("up");
  });
  es.addEventListener("batch", (ev) => applyBatch(JSON.parse(ev.data)));
  es.addEventListener("logout", () => { location.href = "/login"; });
  es.onerror = () => $("conn").classList.remove("up");
}

// ----- rendering ---------------------------------------------------------------------------------------
function cassettes(list, big) {
  const box = el("span", big ? "cass-big" : "cass");
  list.forEach((c, i) => {
    const d = el("span", "cas " + c.level);
    d.title = `cassette ${i + 1}: ${c.count} × ¥${c.denomination} (${c.level})`;
    const fill = el("i"); fill.style.width = Math.min(100, c.count / 25) + "%";
    d.append(fill, el("span", "", big ? `¥${c.denomination}: ${c.count}` : c.count));
    box.append(d);
  });
  return box;
}
function problem(a) { return !a.online || a.unacked > 0 || a.alarms > 0 || a.state !== "in_service" || a.silent; }
function rank(a) { return !a.online ? 0 : a.unacked ? 1 : a.alarms ? 2 : a.state !== "in_service" ? 3 : 4; }

function renderKpis() {
  const t = S.totals; if (!t) return;
  // Counted from the same rows the table shows, so the header never disagrees with a row; the
  // server's totals (sent less often) give the alarms and the ATM-time weighted availability.
  let online = 0, inService = 0, cash = 0;
  for (const a of S.atms.values()) {
    online += a.online ? 1 : 0; inService += a.online && a.state === "in_service" ? 1 : 0; cash += a.cash_yuan;
  }
  $("k-atms").textContent = fmtNum(S.atms.size);
  $("k-online").textContent = fmtNum(online);
  $("k-offline").textContent = fmtNum(S.atms.size - online);
  $("k-inservice").textContent = fmtNum(inService);
  $("k-alarms").textContent = fmtNum(t.unacked);
  $("k-cash").textContent = fmtNum(cash);
  const av = $("k-avail");
  av.textContent = fmtPct(t.availability);
  av.className = "v " + (t.availability === null ? "" : t.availability >= t.benchmark ? "ok-t" : "bad-t");
  $("k-rate").textContent = S.rate === undefined ? "–" : Math.round(S.rate);
  $("conn").classList.toggle("up", !!t.broker_up);
  $("conn").title = t.broker_up ? "broker connected" : "broker unreachable";
}

function renderTable() {
  const q = $("filter").value.trim().toLowerCase();
  const onlyProblems = $("problems").checked;
  let rows = [...S.atms.values()];
  if (q) rows = rows.filter((a) => a.atm_id.toLowerCase().includes(q) || a.state.includes(q));
  if (onlyProblems) rows = rows.filter(problem);
  rows.sort((a, b) => rank(a) - rank(b) || a.atm_id.localeCompare(b.atm_id));
  $("shown").textContent = rows.length > MAX_ROWS ? `showing ${MAX_ROWS} of ${fmtNum(rows.length)}` : `${fmtNum(rows.length)} ATMs`;
  const tb = el("tbody");
  for (const a of rows.slice(0, MAX_ROWS)) {
    const tr = el("tr", !a.online ? "offline" : a.alarms ? "alarmed" : "");
    tr.dataset.atm = a.atm_id;
    const link = el("span", "pill " + (a.online ? (a.silent ? "warn" : "ok") : "bad"),
      a.online ? (a.silent ? "silent" : "online") : "offline");
    const lt = a.last_txn;
    const txt = lt ? `${lt.stage} ¥${lt.amount_yuan} ${fmtTime(lt.ts_ms)}` : "–";
    // An offline ATM's last reported state is history, not its state: it says offline (never green).
    const st = a.online ? el("td", "st-" + a.state, a.state.replace(/_/g, " ")) : el("td", "st-offline", "offline");
    if (!a.online) st.title = "last reported: " + a.state.replace(/_/g, " ");
    const cells = [el("td", "", a.atm_id), el("td"), st,
      el("td"), el("td", "r", fmtNum(a.cash_yuan)), el("td", "", txt),
      el("td", "r " + (a.unacked ? "bad-t" : a.alarms ? "warn-t" : ""), a.alarms || ""),
      el("td", "r " + (a.availability !== null && a.availability < 0.9825 ? "bad-t" : ""), fmtPct(a.availability)),
      el("td", "muted", ago(a.last_seen_ms))];
    cells[0].classList.add("mono");
    cells[1].append(link);
    cells[3].append(cassettes(a.cassettes, false));
    tr.append(...cells);
    tb.append(tr);
  }
  $("atms").replaceChild(tb, $("atms").tBodies[0]);
}

function renderAlarms() {
  const ul = el("ul", "list"); ul.id = "alarms";
  const list = [...S.alarms.values()].sort((a, b) =>
    (a.acked_by ? 1 : 0) - (b.acked_by ? 1 : 0) || (b.severity === "alarm") - (a.severity === "alarm") || b.last_ms - a.last_ms);
  for (const a of list.slice(0, 200)) {
    const li = el("li", `sev-${a.severity}${a.acked_by ? " acked" : ""}${a.active ? "" : " cleared"}`);
    li.dataset.alarm = a.alarm_id;
    li.append(el("span", "mono", fmtTime(a.last_ms)), el("strong", "", a.kind.replace(/_/g, " ")),
      el("span", "mono", a.subject), el("span", "grow muted", a.text + (a.count > 1 ? ` (×${a.count})` : "")));
    if (a.acked_by) li.append(el("span", "muted", "ack " + a.acked_by));
    else {
      const b = el("button", "ack", "Ack");
      b.addEventListener("click", async (ev) => {
        ev.stopPropagation();
        try { applyBatch({alarms: [await api(`/api/alarms/${a.alarm_id}/ack`, {})]}); } catch (e) { alert(e.message); }
      });
      li.append(b);
    }
    ul.append(li);
  }
  $("alarms").replaceWith(ul);
  const unacked = list.filter((a) => !a.acked_by).length;
  $("alarm-count").textContent = unacked ? unacked : "";
}

function cmdItem(c) {
  const li = el("li", c.status === "ok" ? "" : c.status === "sent" ? "sev-warning" : "sev-alarm");
  li.dataset.cmd = c.command_id;
  li.append(el("span", "mono", fmtTime(c.sent_ms)), el("span", "mono", c.atm_id), el("strong", "", c.action.replace(/_/g, " ")),
    el("span", "grow muted", c.detail || ""), el("span", "pill " + (c.status === "ok" ? "ok" : c.status === "sent" ? "warn" : "bad"), c.status),
    el("span", "muted", c.operator));
  return li;
}
function renderSide() {
  const ul = el("ul", "list"); ul.id = "cmds";
  for (const c of [...S.cmds.values()].reverse().slice(0, 50)) ul.append(cmdItem(c));
  $("cmds").replaceWith(ul);
  const tl = el("ul", "list mono"); tl.id = "txns";
  for (const t of S.txns.slice(0, 60)) {
    const li = el("li", t.stage === "declined" || t.stage === "suspect" || t.stage === "rejected" ? "sev-warning" : "");
    li.append(el("span", "", fmtTime(t.ts_ms)), el("span", "", t.atm_id), el("strong", "", t.stage),
      el("span", "", "¥" + t.amount_yuan), el("span", "grow muted", t.reason || (t.txid || "").slice(0, 8)));
    tl.append(li);
  }
  $("txns").replaceWith(tl);
}

function frame() {
  if (S.dirty) {
    S.dirty = false;
    renderKpis(); renderTable(); renderAlarms(); renderSide();
  }
}
setInterval(frame, 250);
setInterval(() => { $("fleet-avail").src = "/api/fleet/availability.svg?t=" + Date.now(); }, 10000);

// ----- detail -----------------------------------------------------------------------------------------
async function loadDetail(id) {
  // Several loads can be in flight (a command sent, then its result pushed): only the newest renders,
  // else an older answer arriving last would show a command as still "sent".
  const gen = ++S.detailGen;
  const d = await api(`/api/atm/${encodeURIComponent(id)}`);
  if (gen !== S.detailGen) return;
  S.detail = id;
  S.detailShown = {state: d.state, online: d.online};
  $("detail").hidden = false;
  const st = d.state.replace(/_/g, " ");
  $("d-title").textContent = d.online ? `${d.atm_id} — online, ${st}` : `${d.atm_id} — offline (last reported: ${st})`;
  const facts = $("d-facts"); facts.replaceChildren();
  const add = (dl, k, v) => dl.append(el("dt", "", k), el("dd", "mono", v));
  add(facts, "device (MCU)", d.device_id || "–");
  for (const [k, v] of Object.entries(d.versions)) add(facts, k + " version", v || "–");
  add(facts, "config version", d.config_version ?? "–");
  add(facts, "availability", fmtPct(d.availability) + " (benchmark 98.25%)");
  add(facts, "bd_seq / births / deaths", `${d.bd_seq ?? "–"} / ${d.births} / ${d.deaths}`);
  add(facts, "sequence gaps", d.seq_gaps);
  add(facts, "outbox depth", d.outbox_depth);
  add(facts, "presenter capacity", d.max_notes == null ? "–" : d.max_notes + " notes");
  add(facts, "last message", fmtTime(d.last_seen_ms));
  $("d-cass").replaceChildren(cassettes(d.cassettes, true));
  const ctr = $("d-counters"); ctr.replaceChildren();
  for (const [k, v] of Object.entries(d.counters)) add(ctr, k, v);
  const cl = $("d-cmds"); cl.replaceChildren();
  for (const c of d.commands) cl.append(cmdItem(c));
  const tb = el("tbody");
  for (const e of d.events) {
    const tr = el("tr");
    tr.append(el("td", "mono", fmtTime(e.ts_ms)), el("td", "", e.kind),
      el("td", e.severity === "alarm" ? "bad-t" : e.severity === "warning" ? "warn-t" : "muted", e.severity),
      el("td", "mono", Object.entries(e.detail).map(([k, v]) => `${k}=${v}`).join(" ")));
    tb.append(tr);
  }
  $("d-events").replaceChild(tb, $("d-events").tBodies[0]);
  $("d-avail").src = `/api/atm/${encodeURIComponent(id)}/availability.svg?t=${Date.now()}`;
}

async function command(action, args) {
  const msg = $("d-cmd-msg");
  try {
    const c = await api(`/api/atm/${encodeURIComponent(S.detail)}/command`, {action, args: args || {}});
    msg.textContent = `${action.replace(/_/g, " ")} sent (signed), waiting for the ATM…`;
    applyBatch({cmds: [c]});  // reloads the open detail (the command is this ATM's)
  } catch (e) { msg.textContent = "refused: " + e.message; }
}

document.querySelector("#atms").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tr[data-atm]");
  if (tr) loadDetail(tr.dataset.atm).catch((e) => alert(e.message));
});
$("d-close").addEventListener("click", () => { $("detail").hidden = true; S.detail = null; });
const CONFIRM = {out_of_service: (id) => `Take ${id} out of service? Customers cannot withdraw until it is put back.`};
for (const b of document.querySelectorAll("#detail [data-action]")) {
  b.addEventListener("click", () => {
    const ask = CONFIRM[b.dataset.action];
    if (ask && !window.confirm(ask(S.detail))) { $("d-cmd-msg").textContent = "not sent"; return; }
    command(b.dataset.action);
  });
}
$("filter").addEventListener("input", () => { S.dirty = true; });
$("problems").addEventListener("change", () => { S.dirty = true; });
$("logout").addEventListener("click", async () => { await api("/api/logout", {}).catch(() => {}); location.href = "/login"; });

(async () => {
  const me = await api("/api/me");
  S.csrf = me.csrf;
  $("user").textContent = me.username + (me.can_command ? "" : " (read-only: no command key)");
  $("fleet-avail").src = "/api/fleet/availability.svg";
  connect();
})();
