// The scoring page: the fair queue's next item in the signal view, keyboard scoring with auto-advance,
// saves without reload that survive going offline (queued in localStorage, retried, idempotent by
// client_id, so never lost and never duplicated), time per epoch, the rater's own hypnogram.
(function () {
  const root = document.getElementById("scoring");
  if (!root) return;
  const api = root.dataset.api;
  const STAGE_KEYS = { w: "W", W: "W", 0: "W", 1: "N1", 2: "N2", 3: "N3", r: "R", R: "R", 5: "R" };
  const COLOURS = { W: "#f2c94c", N1: "#9ad0f5", N2: "#4c9be8", N3: "#2f5fa8", R: "#e5566d" };
  const ORDER = ["W", "R", "N1", "N2", "N3"];
  const queueKey = `scoring-queue:${root.dataset.campaign}:${root.dataset.user}`;
  const view = new SignalView(document.getElementById("signal-view"), document.getElementById("measure-readout"));
  const byId = (id) => document.getElementById(id);
  const csrf = () => (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
  let item = null;            // the item on screen (as the API gives it)
  let items = [];             // the recording's items for this rater: {item, index, stage, uncertain, revision}
  let uncertain = false;
  let shownAt = performance.now();
  let pending = JSON.parse(localStorage.getItem(queueKey) || "[]");
  let progress = null;        // the rater's {done, total} in this campaign (first-pass labels)
  const signalCache = new Map();

  const uuid = () => (crypto.randomUUID ? crypto.randomUUID() :
    "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) => (c ^ (Math.random() * 16) >> (c / 4)).toString(16)));

  async function call(method, url, body) {
    const response = await fetch(url, {
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return response;
  }

  function signalsUrl(recording, index) {
    return root.dataset.signals.replace(/\/0\/epochs\/0\//, `/${recording}/epochs/${index}/`) + "?context=1";
  }

  function signals(recording, index) {
    const key = `${recording}:${index}`;
    if (!signalCache.has(key)) {
      const promise = view.load(signalsUrl(recording, index));
      promise.catch(() => signalCache.delete(key));
      signalCache.set(key, promise);
      if (signalCache.size > 24) signalCache.delete(signalCache.keys().next().value);
    }
    return signalCache.get(key);
  }

  function setState(text, kind) { const el = byId("save-state"); el.textContent = text; el.className = "state state-" + kind; }

  function renderStatus() {
    if (pending.length) setState(navigator.onLine ? `saving ${pending.length}…` : `offline: ${pending.length} queued`, "offline");
    if (progress) byId("progress").textContent = `${progress.done} of ${progress.total} scored`;
  }

  function persist() { localStorage.setItem(queueKey, JSON.stringify(pending)); renderStatus(); }

  let flushing = false;       // one save loop at a time: saves go out in order, each once

  async function flush() {
    if (flushing) return;
    flushing = true;
    try {
      while (pending.length) {
        const entry = pending[0];
        let response;
        try { response = await call("POST", api + "labels/", entry); } catch (e) { renderStatus(); setTimeout(flush, 2000); return; }
        if (response.status === 201 || response.status === 200) {
          const saved = await response.json();
          pending.shift();
          const row = items.find((i) => i.item === saved.item);
          if (row) row.revision = saved.revision;
          pending.filter((p) => p.item === saved.item).forEach((p) => { p.base_revision = saved.revision; });
          persist();
          setState("saved", "succeeded");
          root.dataset.saved = String(Number(root.dataset.saved || 0) + 1);
        } else if (response.status >= 500 || response.status === 429) {
          renderStatus(); setTimeout(flush, 2000); return;
        } else {
          const problem = await response.json().catch(() => ({}));
          pending.shift(); persist();
          setState(problem.detail || `not saved (HTTP ${response.status})`, "error");
          await loadHypnogram(entry.recording);
        }
      }
      if (afterSaves) { const then = afterSaves; afterSaves = null; then(); }
    } finally {
      flushing = false;
    }
  }

  async function loadHypnogram(recording) {
    const response = await call("GET", `${api}hypnogram/?recording=${recording}`);
    if (!response.ok) return;
    items = await response.json();
    for (const entry of pending) {  // labels not yet on the server still show
      const row = items.find((i) => i.item === entry.item);
      if (row) Object.assign(row, { stage: entry.stage, uncertain: entry.uncertain });
    }
    drawHypnogram();
  }

  function drawHypnogram() {
    const canvas = byId("own-hypnogram");
    const ratio = window.devicePixelRatio || 1;
    canvas.width = canvas.clientWidth * ratio; canvas.height = canvas.clientHeight * ratio;
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const w = canvas.clientWidth, h = canvas.clientHeight;
    g.fillStyle = "#0b1015"; g.fillRect(0, 0, w, h);
    if (!items.length) return;
    const last = item ? item.recording_epoch_count : Math.max(...items.map((i) => i.index)) + 1;
    const step = w / last, row = h / ORDER.length;
    for (const i of items) {
      if (!i.stage) continue;
      g.fillStyle = COLOURS[i.stage];
      g.fillRect(i.index * step, ORDER.indexOf(i.stage) * row + 2, Math.max(step, 1), row - 4);
      if (i.uncertain) { g.fillStyle = "#fff"; g.fillRect(i.index * step, h - 3, Math.max(step, 1), 3); }
    }
    if (item) { g.strokeStyle = "#ffa64d"; g.strokeRect(item.index * step, 0, Math.max(step, 2), h); }
    canvas.onclick = (event) => {
      const index = Math.floor(((event.clientX - canvas.getBoundingClientRect().left) / w) * last);
      const target = items.find((i) => i.index === index);
      if (target && target.stage) goTo(target);
    };
  }

  async function show(next) {
    item = next;
    const data = await signals(item.recording, item.index);
    view.show(data);
    const row = items.find((i) => i.item === item.item);
    uncertain = row ? !!row.uncertain : false;
    byId("uncertain").dataset.on = uncertain ? "1" : "0";
    byId("position").textContent = `epoch ${item.index + 1} of ${item.recording_epoch_count}`;
    document.querySelectorAll(".stage-btn").forEach((b) => b.classList.toggle("active", !!row && b.dataset.stage === row.stage));
    byId("current-label").textContent = row && row.stage ? `Your label: ${row.stage}${row.uncertain ? " (uncertain)" : ""}` : "No label yet.";
    showContext(item);
    shownAt = performance.now();
    drawHypnogram();
    root.dataset.index = String(item.index);
    root.dataset.item = String(item.item);
    for (const next of upcoming.slice(0, 2)) signals(next.recording, next.index);
  }

  function showContext(served) {  // what the campaign opens to raters: reference, others' labels, model outputs
    const box = byId("context");
    box.replaceChildren();
    const line = (text) => { const p = document.createElement("p"); p.textContent = text; box.append(p); };
    if (served.reference_stage !== undefined) line(`Reference: ${served.reference_stage}`);
    if (served.other_labels !== undefined) line(`Other raters: ${served.other_labels.join(", ") || "none yet"}`);
    for (const output of served.model_outputs || []) {
      line(`${output.model}: ${output.stage}${output.rule_ids.length ? " · " + output.rule_ids.join(", ") : ""}`);
      if (output.rationale) { const q = document.createElement("blockquote"); q.textContent = output.rationale; box.append(q); }
    }
    box.hidden = !box.childElementCount;
  }

  async function loadProgress() {
    const response = await call("GET", api).catch(() => null);
    if (response && response.ok) { progress = (await response.json()).progress; renderStatus(); }
  }

  let upcoming = [];           // items reserved ahead (the queue's order), so scoring goes on offline
  let refilling = null;
  let afterSaves = null;      // what to do once every queued save has landed
  let retrying = null;        // a timer asking the queue again while the page has nothing to show

  async function refill() {
    if (refilling) return refilling;
    refilling = (async () => {
      try {
        const response = await call("POST", api + "ahead/?count=4");
        if (!response.ok) { setState(`could not get the next epochs (HTTP ${response.status})`, "error"); return; }
        const batch = await response.json();
        batch.forEach((u) => served.set(u.item, u));
        if (batch.length && (!item || item.recording !== batch[0].recording)) await loadHypnogram(batch[0].recording);
        const known = new Set(upcoming.map((u) => u.item).concat(item ? [item.item] : []));
        upcoming = upcoming.concat(batch.filter((u) => !known.has(u.item) && !isScored(u.item)));
        if (!upcoming.length && batch.every((u) => isScored(u.item))) {
          // only scored items came back: done, unless saves still in flight hold the slots of items to come
          if (pending.length) afterSaves = advanceIfAnswered; else { byId("done").hidden = false; root.dataset.done = "1"; }
        }
      } catch (e) { setState(`offline: ${pending.length} queued`, "offline"); }
      finally { refilling = null; }
    })();
    return refilling;
  }

  const isScored = (id) => items.some((i) => i.item === id && i.stage) || pending.some((p) => p.item === id);

  const served = new Map();    // item id -> the item as the queue served it (with what the campaign shows)

  function goTo(row) {
    const { reference_stage, other_labels, model_outputs, ...base } = item;  // never another epoch's context
    show(served.get(row.item) || { ...base, item: row.item, index: row.index });
  }

  let advancing = null;       // one move at a time: two could show two items and skip the first

  function advance() {
    if (!advancing) advancing = moveOn().finally(() => { advancing = null; });
    return advancing;
  }

  async function moveOn() {
    upcoming = upcoming.filter((u) => !isScored(u.item) && (!item || u.item !== item.item));
    if (upcoming.length < 2) { const waiting = refill(); if (!upcoming.length) await waiting; }
    upcoming = upcoming.filter((u) => !isScored(u.item));
    if (upcoming.length) await show(upcoming.shift());
    else if (item && isScored(item.item) && !root.dataset.done && !retrying) {
      // the queue answered only with items whose saves are still on their way: ask again shortly
      retrying = setTimeout(() => { retrying = null; advanceIfAnswered(); }, 1000);
    }
  }

  // automatic moves (after saves land, on retry) never leave an item the rater has not answered yet
  function advanceIfAnswered() { if (!item || isScored(item.item)) advance(); }

  function score(stage) {
    if (!item) return;
    const row = items.find((i) => i.item === item.item);
    const queued = pending.filter((p) => p.item === item.item).pop();
    const entry = {
      item: item.item, recording: item.recording, stage, uncertain,
      rule_ids: byId("rule-ids") ? Array.from(byId("rule-ids").selectedOptions, (o) => o.value) : [],
      rationale: byId("rationale") ? byId("rationale").value : "",
      seconds_spent: Math.round((performance.now() - shownAt) / 100) / 10,
      client_id: uuid(),
      // an edit queued behind an unsent save of the same item learns its base revision when that save returns
      base_revision: queued ? null : (row && row.revision) || null,
    };
    pending.push(entry);
    if (progress && !(row && row.stage)) progress.done += 1;
    if (row) Object.assign(row, { stage, uncertain }); else items.push({ item: item.item, index: item.index, stage, uncertain });
    persist();
    flush();
    advance();
  }

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.metaKey || event.ctrlKey || event.altKey) return;
    const key = event.key;
    const name = key.length === 1 ? key.toLowerCase() : key;
    const actions = {
      ArrowRight: () => { const later = items.filter((i) => i.index > item.index && i.stage).sort((a, b) => a.index - b.index)[0];
        if (later) goTo(later); else advance(); },
      ArrowLeft: () => { const prev = items.filter((i) => i.index < item.index).sort((a, b) => b.index - a.index)[0]; if (prev) goTo(prev); },
      u: () => { uncertain = !uncertain; byId("uncertain").dataset.on = uncertain ? "1" : "0"; },
      "+": () => view.setGain(1.25), "=": () => view.setGain(1.25), "-": () => view.setGain(0.8),
      t: () => view.nextKind(), x: () => view.setGain(null), g: () => { view.guides = !view.guides; view.draw(); },
      "?": () => { byId("help").hidden = !byId("help").hidden; },
      Escape: () => { byId("help").hidden = true; },
    };
    if (STAGE_KEYS[key]) { event.preventDefault(); score(STAGE_KEYS[key]); }
    else if (actions[name]) { event.preventDefault(); actions[name](); }
  });
  document.querySelectorAll(".stage-btn").forEach((b) => b.addEventListener("click", () => score(b.dataset.stage)));
  byId("uncertain").addEventListener("click", () => { uncertain = !uncertain; byId("uncertain").dataset.on = uncertain ? "1" : "0"; });
  window.addEventListener("online", flush);

  (async function start() {
    await loadProgress();
    if (pending.length) flush();
    await advance();
    root.dataset.ready = "1";
  })();
})();
