// The scan desk's console: renders the agent's view as it arrives over
// server-sent events. Text from files and the server goes in as text, never
// as markup.
"use strict";

const T = {
  en: {
    title: "Scan desk", sound: "Sound", pin: "Desk PIN", sign_in: "Open", now: "Now scanning",
    close_packet: "Close this packet now", recent: "Recent packets", health: "This desk",
    quarantined: "Files that could not be read", reprint: "Reprint a cover", doc_no: "Document number",
    find: "Find", pending: "Waiting for paper here",
    idle: "Nothing being scanned. Put the cover sheet on top and scan.",
    connected: "Connected", disconnected: "Offline", refused: "Refused by the server", never: "Not connected yet",
    offline_banner: (since, n) => `The server cannot be reached (since ${since}). Keep scanning: ${n} page(s) wait safely on this desk and go out when it is back.`,
    refused_banner: (why) => `The server refuses this desk: ${why}. Ask the administrator.`,
    pages: (n) => `${n} page(s)`,
    st_open: "Scanning…", st_sending: "Sending", st_sent: "Sent, waiting for the server",
    st_matched: "Matched", st_waiting: "Waiting for its document", st_no_cover: "No cover sheet",
    st_empty: "Empty: nothing after the cover", st_rejected: "Sent back by sign-off", st_failed: "Refused by the server",
    st_held: "Held: pages refused", st_queued: "Kept on this desk until the server is back",
    hint_waiting: "Its document is not known yet; it attaches when the ERP sends it.",
    hint_no_cover: "Scan the cover sheet first, then these pages again, or ask sign-off staff to attach them.",
    hint_empty: "Only a cover was scanned. Scan the document's pages after its cover.",
    hint_rejected: "Rescan this document with its cover sheet.",
    declared: (d, s) => `${s} of ${d} declared pages`,
    short: (d, s) => `SHORT: ${d} declared, ${s} scanned, ${d - s} missing`,
    over: (d, s) => `OVER: ${d} declared, ${s} scanned, ${s - d} extra`,
    blanks: (n) => `${n} blank back(s) dropped`,
    sent_of: (a, b) => `${a} of ${b} sent`,
    cover: "Cover", amount: "Amount", submitter: "Submitter", no_doc: "Document not known on this desk yet",
    server: "Server", site: "Site", backlog: "Waiting to send", spool: "Spool", disk: "Disk free",
    watching: "Watching", last_file: "last file", never_file: "no file yet", failed_pages: "Pages refused",
    retry: "Try again", retried: (p) => `Put back as ${p}`, none: "None",
    print: "Print cover", not_found: "No such document for this desk.", from_cache: "(from this desk's copy: the server is away)",
    closed: (n) => n ? "Packet closed." : "No packet was open.",
    cached_at: (t) => `as of ${t}`, rescan: "rescan", awaiting: "awaiting paper",
    rescan_now: "Rescan now", rescan_next: (d) => `Next packet is the rescan of ${d}: scan its pages, no cover needed.`,
    rescan_cancel: "Cancel", rescan_of: (d) => `rescan of ${d}`, eta: (m) => `about ${m} min left`,
  },
  zh: {
    title: "扫描台", sound: "声音", pin: "扫描台 PIN", sign_in: "打开", now: "正在扫描",
    close_packet: "立即结束本包", recent: "最近的扫描包", health: "本机状态",
    quarantined: "无法读取的文件", reprint: "重新打印封面", doc_no: "单据编号",
    find: "查找", pending: "等待纸质单据",
    idle: "当前没有扫描。请把封面放在最上面再扫描。",
    connected: "已连接", disconnected: "离线", refused: "服务器拒绝", never: "尚未连接",
    offline_banner: (since, n) => `无法连接服务器（自 ${since} 起）。可以继续扫描：${n} 页已安全保存在本机，恢复连接后自动上传。`,
    refused_banner: (why) => `服务器拒绝本扫描台：${why}。请联系管理员。`,
    pages: (n) => `${n} 页`,
    st_open: "扫描中…", st_sending: "上传中", st_sent: "已上传，等待服务器",
    st_matched: "已匹配", st_waiting: "等待单据", st_no_cover: "没有封面",
    st_empty: "空包：封面后没有页", st_rejected: "签收退回", st_failed: "服务器拒绝",
    st_held: "暂停：有页被拒绝", st_queued: "已保存在本机，服务器恢复后上传",
    hint_waiting: "服务器上还没有这张单据；ERP 推送后会自动关联。",
    hint_no_cover: "请先扫描封面，再重新扫描这些页，或请签收人员手工关联。",
    hint_empty: "只扫描了封面。请在封面后扫描单据各页。",
    hint_rejected: "请连同封面重新扫描这张单据。",
    declared: (d, s) => `已扫 ${s} / 声明 ${d} 页`,
    short: (d, s) => `缺页：声明 ${d} 页，已扫 ${s} 页，缺 ${d - s} 页`,
    over: (d, s) => `多页：声明 ${d} 页，已扫 ${s} 页，多 ${s - d} 页`,
    blanks: (n) => `已去除 ${n} 张空白背面`,
    sent_of: (a, b) => `已上传 ${a} / ${b}`,
    cover: "封面", amount: "金额", submitter: "提交人", no_doc: "本机尚不知道这张单据",
    server: "服务器", site: "站点", backlog: "待上传", spool: "缓存", disk: "磁盘剩余",
    watching: "监视目录", last_file: "最近文件", never_file: "还没有文件", failed_pages: "被拒绝的页",
    retry: "重试", retried: (p) => `已放回：${p}`, none: "无",
    print: "打印封面", not_found: "本扫描台找不到这张单据。", from_cache: "（来自本机缓存：服务器不可用）",
    closed: (n) => n ? "已结束本包。" : "没有未结束的包。",
    cached_at: (t) => `更新于 ${t}`, rescan: "需重扫", awaiting: "等待纸质单据",
    rescan_now: "现在重扫", rescan_next: (d) => `下一包是 ${d} 的重扫：直接扫描各页，无需封面。`,
    rescan_cancel: "取消", rescan_of: (d) => `${d} 的重扫`, eta: (m) => `约 ${m} 分钟传完`,
  },
};

const STATE_CLASS = {
  open: "info", sending: "info", sent: "info", matched: "ok", waiting: "warn", no_cover: "warn",
  empty: "warn", rejected: "bad", failed: "bad", held: "bad",
};
const STATE_MARK = {
  open: "●", sending: "↑", sent: "↑", matched: "✓", waiting: "…", no_cover: "⚠", empty: "⚠",
  rejected: "✗", failed: "✗", held: "✗",
};

const token = document.querySelector('meta[name="console-token"]').content;
const pinAsked = document.querySelector('meta[name="console-pin"]').content === "1";
let lang = localStorage.getItem("imc-console-lang") ||
  ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en");
let view = null;
let known = new Map(); // packet id -> state, to announce and sound changes
let audio = null;

const $ = (id) => document.getElementById(id);
const t = (key, ...args) => { const v = T[lang][key] ?? T.en[key] ?? key; return typeof v === "function" ? v(...args) : v; };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
  return node;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(lang === "zh" ? "zh-CN" : undefined, { hour12: false });
}

function bytes(n) {
  if (n === null || n === undefined) return "?";
  const mib = n / 1048576;
  return mib >= 1024 ? `${(mib / 1024).toFixed(1)} GiB` : `${mib.toFixed(mib < 10 ? 1 : 0)} MiB`;
}

async function call(method, path, body) {
  const response = await fetch(path, {
    method, headers: { "x-console-token": token, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
  });
  const text = await response.text();
  let json = null; try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
  if (!response.ok) throw new Error(json?.error?.message || `${response.status} ${text}`);
  return json;
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = `IMC ${t("title")}`;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  $("lang").textContent = lang === "zh" ? "English" : "中文";
  if (view) render(view);
}

function documentLine(p) {
  const d = p.document;
  if (!d) return p.cover_code ? [el("span", { class: "muted" }, `${t("cover")} ${p.cover_code} · ${t("no_doc")}`)] : [];
  const bits = [d.title, d.submitter && `${t("submitter")} ${d.submitter}`, d.amount && `${t("amount")} ${d.amount}`].filter(Boolean);
  return [el("span", { class: "doc-no" }, d.doc_no), bits.length ? el("span", { class: "muted" }, ` · ${bits.join(" · ")}`) : null];
}

function countLine(p) {
  const parts = [];
  if (p.declared !== null && p.declared !== undefined) {
    if (p.count === "short") parts.push(el("strong", { class: "bad-text" }, "⚠ " + t("short", p.declared, p.scanned)));
    else if (p.count === "over") parts.push(el("strong", { class: "warn-text" }, "⚠ " + t("over", p.declared, p.scanned)));
    else parts.push(t("declared", p.declared, p.scanned));
  } else {
    parts.push(t("pages", p.scanned));
  }
  if (p.count_note) parts.push(` · ${p.count_note}`);
  for (const w of p.warnings || []) parts.push(el("strong", { class: "warn-text warning" }, ` ⚠ ${w}`));
  if (p.blanks) parts.push(` · ${t("blanks", p.blanks)}`);
  return parts;
}

function stateLabel(p) {
  const offline = view && view.link.state !== "connected";
  if (offline && (p.state === "sending" || p.state === "sent")) return `↑ ${t("st_queued")}`;
  let label = t("st_" + p.state);
  if (p.rescan_of) label = `${t("rescan_of", p.rescan_of)}: ${label}`;
  if (p.state === "matched" && p.document) label += ` → ${p.document.doc_no}`;
  if (p.state === "sending") label += ` ${t("sent_of", p.pages_sent, p.pages)}`;
  return `${STATE_MARK[p.state] || ""} ${label}`;
}

function hint(p) {
  const key = { waiting: "hint_waiting", no_cover: "hint_no_cover", empty: "hint_empty", rejected: "hint_rejected" }[p.state];
  return [p.message, key && t(key)].filter(Boolean).join(" — ");
}

function renderNow(v) {
  const box = $("now-body");
  const p = v.now_scanning;
  box.className = "card " + (p ? STATE_CLASS[p.state] || "" : "");
  if (!p && v.rescan_next) {
    box.className = "card warn";
    box.replaceChildren(el("div", { class: "doc" }, v.rescan_next.doc_no), el("p", { id: "rescan-next" }, t("rescan_next", v.rescan_next.doc_no)),
      el("button", { type: "button", onclick: () => chooseRescan(null, "") }, t("rescan_cancel")));
    return;
  }
  if (!p) { box.replaceChildren(el("p", { class: "muted" }, t("idle"))); return; }
  box.replaceChildren(
    el("div", { class: "doc" }, p.document ? p.document.doc_no : (p.cover_code ? `${t("cover")} ${p.cover_code}` : t("st_no_cover"))),
    el("div", {}, ...documentLine(p).slice(1)),
    el("div", { class: "state" }, stateLabel(p)),
    el("div", {}, ...countLine(p)),
    p.cover_problem ? el("div", { class: "bad-text" }, p.cover_problem) : null,
  );
}

function renderPackets(v) {
  const list = $("packets");
  $("recent-count").textContent = `(${v.packets.length})`;
  list.replaceChildren(...v.packets.map((p) => el("li", { class: (p.warnings || []).length && p.state === "matched" ? "warn" : STATE_CLASS[p.state] || "", "data-state": p.state, "data-packet": p.id },
    el("span", { class: "muted" }, when(p.created_at)),
    el("span", {}, ...documentLine(p)),
    el("span", { class: "state" }, stateLabel(p)),
    el("span", { class: "detail" }, ...countLine(p), hint(p) ? ` — ${hint(p)}` : ""),
  )));
}

function renderHealth(v) {
  const link = $("link");
  link.textContent = `${v.link.state === "connected" ? "●" : "○"} ${t(v.link.state)}`;
  link.className = "badge " + (v.link.state === "connected" ? "ok" : "bad");
  $("desk").textContent = `${v.agent_id} · ${t("site")} ${v.site}`;
  const offline = $("offline");
  if (v.link.state === "connected") offline.hidden = true;
  else {
    offline.hidden = false;
    offline.textContent = v.link.state === "refused" ? t("refused_banner", v.link.detail)
      : t("offline_banner", when(v.link.since) || "?", v.queue.pages_waiting);
  }
  const q = v.queue;
  const facts = [
    [t("server"), `${v.server_url} — ${t(v.link.state)}${v.link.since ? ` (${when(v.link.since)})` : ""}`],
    [t("backlog"), `${t("pages", q.pages_waiting)}, ${bytes(q.bytes_waiting)}` +
      (q.backlog_eta_secs !== null && q.backlog_eta_secs !== undefined && v.link.state === "connected" ? ` — ${t("eta", Math.max(1, Math.round(q.backlog_eta_secs / 60)))}` : "")],
    [t("spool"), `${bytes(q.spool_used_bytes)} / ${bytes(q.spool_max_bytes)}`],
    [t("disk"), `${bytes(q.disk_free_bytes)} (≥ ${bytes(q.disk_keep_bytes)})`],
    ...v.watching.map((w) => [t("watching"), `${w.dir} — ${t("last_file")}: ${w.last_file_at ? when(w.last_file_at) : t("never_file")}`]),
  ];
  if (q.failed_pages) facts.push([t("failed_pages"), String(q.failed_pages)]);
  const dl = $("health");
  dl.replaceChildren(...facts.flatMap(([k, val]) => [el("dt", {}, k), el("dd", {}, val)]));
  for (const warning of [q.room_warning, q.scan_line_waiting].filter(Boolean)) {
    dl.append(el("dt", { class: "bad-text" }, "⚠"), el("dd", { class: "bad-text" }, warning));
  }
}

function renderQuarantined(v) {
  $("q-count").textContent = `(${v.quarantined.length})`;
  const list = $("quarantined");
  if (!v.quarantined.length) { list.replaceChildren(el("li", { class: "muted" }, t("none"))); return; }
  list.replaceChildren(...v.quarantined.map((f) => el("li", { class: "bad-text", "data-file": f.id },
    el("div", {}, `✗ ${f.path}`), el("div", { class: "muted" }, `${when(f.at)} — ${f.reason}`),
    el("button", { type: "button", onclick: () => retry(f.id) }, t("retry")))));
}

function renderPending(v) {
  $("p-count").textContent = `(${v.pending.length})${v.pending_fetched_at ? " " + t("cached_at", when(v.pending_fetched_at)) : ""}`;
  const list = $("pending");
  if (!v.pending.length) { list.replaceChildren(el("li", { class: "muted" }, t("none"))); return; }
  list.replaceChildren(...v.pending.slice(0, 50).map(docItem));
}

function docItem(d) {
  const tag = d.status === "rejected" ? `✗ ${t("rescan")}${d.reject_reason ? ": " + d.reject_reason : ""}` : t("awaiting");
  return el("li", { "data-doc": d.doc_no },
    el("strong", {}, d.doc_no), " ", el("span", { class: "muted" }, [d.title, d.amount].filter(Boolean).join(" · ")),
    el("div", { class: d.status === "rejected" ? "bad-text" : "muted" }, tag),
    el("a", { href: `/documents/${d.id}/cover.pdf`, target: "_blank", rel: "noopener", class: "print" }, t("print")),
    d.status === "rejected" ? el("button", { type: "button", class: "rescan", onclick: () => chooseRescan(d.id, d.doc_no) }, t("rescan_now")) : null);
}

async function chooseRescan(id, docNo) {
  try { await call("POST", "/actions/rescan", { id, doc_no: docNo }); }
  catch (e) { flash(e.message, true); }
}

function announce(v) {
  const first = known.size === 0;
  for (const p of v.packets) {
    const before = known.get(p.id);
    if (!first && before !== p.state && !["open", "sending", "sent"].includes(p.state)) {
      $("last-outcome").textContent = `${stateLabel(p)} ${p.document ? p.document.doc_no : ""}`;
      beep(STATE_CLASS[p.state]);
    }
    known.set(p.id, p.state);
  }
}

function beep(kind) {
  if (!$("sound").checked) return;
  try {
    audio = audio || new AudioContext();
    const tones = kind === "ok" ? [880] : kind === "bad" ? [220, 180] : [440, 440];
    tones.forEach((f, i) => {
      const o = audio.createOscillator(); const g = audio.createGain();
      o.frequency.value = f; o.connect(g); g.connect(audio.destination);
      const at = audio.currentTime + i * 0.25; g.gain.setValueAtTime(0.2, at); o.start(at); o.stop(at + 0.18);
    });
  } catch (_) { /* no audio on this machine */ }
}

function render(v) {
  view = v;
  $("problem").hidden = true;
  renderHealth(v); renderNow(v); renderPackets(v); renderQuarantined(v); renderPending(v);
}

async function retry(id) {
  try { const r = await call("POST", "/actions/retry-file", { id }); flash(t("retried", r.path)); }
  catch (e) { flash(e.message, true); }
}

async function closePacket() {
  try { const r = await call("POST", "/actions/close-packet", {}); flash(t("closed", r.closed)); }
  catch (e) { flash(e.message, true); }
}

function flash(text, bad) {
  const p = $("problem");
  p.hidden = false; p.textContent = text; p.className = "banner " + (bad ? "bad" : "");
  p.setAttribute("role", bad ? "alert" : "status");
  setTimeout(() => { if (p.textContent === text) p.hidden = true; }, 6000);
}

async function find(event) {
  event.preventDefault();
  const q = $("q").value.trim();
  const out = $("found");
  try {
    const r = await call("GET", `/documents?q=${encodeURIComponent(q)}`);
    if (!r.documents.length) { out.replaceChildren(el("li", { class: "bad-text" }, t("not_found"))); return; }
    const items = r.documents.map(docItem);
    if (r.offline) items.push(el("li", { class: "muted" }, t("from_cache")));
    out.replaceChildren(...items);
  } catch (e) { out.replaceChildren(el("li", { class: "bad-text" }, e.message)); }
}

function listen() {
  $("main").hidden = false;
  const source = new EventSource("/events");
  source.addEventListener("view", (e) => { const v = JSON.parse(e.data); announce(v); render(v); });
  source.addEventListener("problem", (e) => flash(e.data, true));
  source.onerror = () => flash(lang === "zh" ? "与本机代理的连接中断，正在重连…" : "Lost the desk agent; reconnecting…", true);
}

async function login(event) {
  event.preventDefault();
  try {
    await call("POST", "/login", { pin: $("pin").value });
    $("login").hidden = true; listen();
  } catch (e) { $("login-error").textContent = e.message; }
}

document.addEventListener("DOMContentLoaded", () => {
  $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("imc-console-lang", lang); translate(); });
  $("sound").checked = localStorage.getItem("imc-console-sound") === "1";
  $("sound").addEventListener("change", () => localStorage.setItem("imc-console-sound", $("sound").checked ? "1" : "0"));
  $("close").addEventListener("click", closePacket);
  $("find").addEventListener("submit", find);
  $("login").addEventListener("submit", login);
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "c" || e.key === "C") { e.preventDefault(); closePacket(); }
    if (e.key === "/") { e.preventDefault(); $("q").focus(); }
  });
  translate();
  if (pinAsked) {
    fetch("/view", { credentials: "same-origin" }).then((r) => { if (r.ok) listen(); else { $("login").hidden = false; $("pin").focus(); } });
  } else listen();
});
