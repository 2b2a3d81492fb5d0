// The rating page: the queue's next rationale under its epoch and the neighbours in the signal view, a 1-5
// score per rubric dimension from the keyboard, an optional note; saves without reload that survive going
// offline (queued in localStorage, retried in order, idempotent by client_id), 412 when a rating changed
// elsewhere, time per item, and the items rated on this page a key away to change a rating.
(function () {
  const root = document.getElementById("rating");
  if (!root) return;
  const api = root.dataset.api;
  const byId = (id) => document.getElementById(id);
  const dims = Array.from(document.querySelectorAll(".dimension"));
  const keys = dims.map((d) => d.dataset.key);
  const queueKey = `rating-queue:${root.dataset.campaign}:${root.dataset.user}`;
  const view = new SignalView(byId("signal-view"), byId("measure-readout"));
  const csrf = () => (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
  let item = null;            // the item on screen (as the queue served it)
  let scores = {};            // dimension key -> 1..5 for the item on screen
  let focus = 0;              // the focused dimension
  let shownAt = performance.now();
  let pending = JSON.parse(localStorage.getItem(queueKey) || "[]");
  let progress = null;        // the rater's {done, total} in this campaign
  let upcoming = [];          // items reserved ahead (the queue's order), so rating goes on offline
  let fresh = null;           // the unrated item left to look back at rated ones
  const rated = new Map();    // item id -> {served, values, revision}: the items rated on this page
  const history = [];         // their ids, in the order rated
  const signalCache = new Map();

  const uuid = () => (crypto.randomUUID ? crypto.randomUUID() :
    "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) => (c ^ (Math.random() * 16) >> (c / 4)).toString(16)));

  const call = (method, url, body) => fetch(url, {
    method, credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

  function signals(recording, index) {
    const key = `${recording}:${index}`;
    if (!signalCache.has(key)) {
      const url = root.dataset.signals.replace(/\/0\/epochs\/0\//, `/${recording}/epochs/${index}/`) + "?context=1";
      const promise = view.load(url);
      promise.catch(() => signalCache.delete(key));
      signalCache.set(key, promise);
      if (signalCache.size > 24) signalCache.delete(signalCache.keys().next().value);
    }
    return signalCache.get(key);
  }

  function setState(text, kind) { const el = byId("save-state"); el.textContent = text; el.className = "state state-" + kind; }

  function renderStatus() {
    if (pending.length) setState(navigator.onLine ? `saving ${pending.length}…` : `offline: ${pending.length} queued`, "offline");
    if (progress) byId("progress").textContent = `${progress.done} of ${progress.total} rated`;
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
        try { response = await call("POST", api + "ratings/", entry); } catch (e) { renderStatus(); setTimeout(flush, 2000); return; }
        if (response.status === 201 || response.status === 200) {
          const saved = await response.json();
          pending.shift();
          if (rated.has(saved.item)) rated.get(saved.item).revision = saved.revision;
          pending.filter((p) => p.item === saved.item).forEach((p) => { p.base_revision = saved.revision; });
          persist();
          setState("saved", "succeeded");
          if (item && item.item === saved.item) showRevision(saved.revision);
          root.dataset.saved = String(Number(root.dataset.saved || 0) + 1);
        } else if (response.status >= 500 || response.status === 429) {
          renderStatus(); setTimeout(flush, 2000); return;
        } else {
          const problem = await response.json().catch(() => ({}));
          pending.shift(); persist();
          setState(problem.detail || `not saved (HTTP ${response.status})`, "error");
          await reload(entry.item);
        }
      }
      if (afterSaves) { const then = afterSaves; afterSaves = null; then(); }
    } finally {
      flushing = false;
    }
  }

  async function reload(id) {  // after a refused save: what the server holds (another tab's rating, or none)
    const record = rated.get(id);
    if (!record || pending.some((p) => p.item === id)) return;
    const response = await call("GET", `${api}ratings/?item=${id}`).catch(() => null);
    if (!response || !response.ok) return;
    const rows = await response.json();
    const current = (rows.results || rows)[0];
    if (current) {
      Object.assign(record, { values: valuesOf(current), revision: current.revision });
    } else {           // a first rating refused (the reservation lapsed): the item is not rated
      rated.delete(id);
      history.splice(history.indexOf(id), 1);
      if (progress) { progress.done -= 1; renderStatus(); }
    }
    if (item && item.item === id) show(item);
  }

  const valuesOf = (r) => ({ scores: { ...r.scores }, note: r.note || "", corrected_stage: r.corrected_stage || "",
    corrected_rule_ids: [...(r.corrected_rule_ids || [])] });

  function showRevision(revision) {
    byId("current-rating").textContent = revision ? `· your rating, revision ${revision}` : "";
  }

  function renderScores() {
    dims.forEach((d, i) => {
      d.classList.toggle("focused", i === focus);
      d.classList.toggle("missing", d.classList.contains("missing") && !scores[d.dataset.key]);
      d.querySelectorAll(".scale-point").forEach((b) => {
        const on = Number(b.dataset.score) === scores[d.dataset.key];
        b.classList.toggle("chosen", on); b.setAttribute("aria-checked", String(on));
      });
    });
    if (!document.querySelector(".dimension.missing")) byId("missing").hidden = true;
  }

  function focusDimension(i) {
    focus = (i + dims.length) % dims.length;
    dims[focus].focus({ preventScroll: true });
    renderScores();
  }

  async function show(served) {
    item = served;
    byId("work").hidden = false; byId("done").hidden = true;
    const record = rated.get(served.item);
    const values = record ? record.values : served.rating ? valuesOf(served.rating) : valuesOf({ scores: {} });
    scores = { ...values.scores };
    byId("note").value = values.note;
    byId("corrected-stage").value = values.corrected_stage;
    Array.from(byId("corrected-rules").options).forEach((o) => { o.selected = values.corrected_rule_ids.includes(o.value); });
    showRevision(record ? record.revision : served.rating && served.rating.revision);
    byId("position").textContent = `epoch ${served.index + 1} of ${served.recording_epoch_count}`;
    const stage = byId("item-stage");
    stage.textContent = served.stage; stage.className = `stage stage-${served.stage}`;
    byId("item-rules").replaceChildren(...served.rules.map((r) => {
      const li = document.createElement("li");
      li.append(Object.assign(document.createElement("strong"), { textContent: r.id }), r.title ? ` · ${r.title}` : "");
      if (r.text) li.append(Object.assign(document.createElement("span"), { className: "rules", textContent: r.text }));
      return li;
    }));
    byId("item-rationale").textContent = served.rationale;
    dims.forEach((d) => d.classList.remove("missing"));
    focusDimension(0);
    shownAt = performance.now();
    try {
      const data = await signals(served.recording, served.index);
      if (item !== served) return;
      view.show(data);
    } catch (e) {
      byId("measure-readout").textContent = "The signals could not be loaded (offline?).";
    }
    root.dataset.item = String(served.item);
    for (const next of upcoming.slice(0, 2)) signals(next.recording, next.index);
  }

  async function loadProgress() {
    const response = await call("GET", api).catch(() => null);
    if (response && response.ok) { progress = (await response.json()).progress; renderStatus(); }
  }

  const isRated = (id) => rated.has(id) || pending.some((p) => p.item === id);
  let refilling = null;
  let afterSaves = null;      // what to do once every queued save has landed
  let retrying = null;        // a timer asking the queue again while the page has nothing to show

  async function refill() {
    if (refilling) return refilling;
    refilling = (async () => {
      try {
        const response = await call("POST", api + "ahead/?count=4");
        if (!response.ok) { setState(`could not get the next items (HTTP ${response.status})`, "error"); return; }
        const batch = await response.json();
        const known = new Set(upcoming.map((u) => u.item).concat(item ? [item.item] : []));
        upcoming = upcoming.concat(batch.filter((u) => !known.has(u.item) && !isRated(u.item)));
        if (!upcoming.length && batch.every((u) => isRated(u.item))) {
          // only answered items came back: done, unless saves still in flight hold the slots of items to come
          if (pending.length) afterSaves = advanceIfAnswered; else finished();
        }
      } catch (e) { setState(`offline: ${pending.length} queued`, "offline"); }
      finally { refilling = null; }
    })();
    return refilling;
  }

  function finished() {
    if (item && !isRated(item.item)) return;
    item = null;
    byId("work").hidden = true; byId("done").hidden = false; root.dataset.done = "1";
  }

  let advancing = null;       // one move at a time: two could show two items and skip the first

  function advance() {
    if (!advancing) advancing = moveOn().finally(() => { advancing = null; });
    return advancing;
  }

  async function moveOn() {
    upcoming = upcoming.filter((u) => !isRated(u.item) && (!item || u.item !== item.item));
    if (upcoming.length < 2) { const waiting = refill(); if (!upcoming.length) await waiting; }
    upcoming = upcoming.filter((u) => !isRated(u.item));
    if (upcoming.length) await show(upcoming.shift());
    else if (item && isRated(item.item) && !root.dataset.done && !retrying) {
      // the queue answered only with items whose saves are still on their way: ask again shortly
      retrying = setTimeout(() => { retrying = null; advanceIfAnswered(); }, 1000);
    }
  }

  // automatic moves (after saves land, on retry) never leave an item the rater has not answered yet
  function advanceIfAnswered() { if (!item || isRated(item.item)) advance(); }

  function back() {
    const at = item ? history.indexOf(item.item) : -1;
    const previous = at === -1 ? history[history.length - 1] : history[at - 1];
    if (previous === undefined) return;
    if (at === -1 && item) fresh = item;
    show(rated.get(previous).served);
  }

  function forward() {
    const at = item ? history.indexOf(item.item) : -1;
    if (at !== -1 && at + 1 < history.length) return show(rated.get(history[at + 1]).served);
    if (fresh && !isRated(fresh.item)) { const next = fresh; fresh = null; return show(next); }
    fresh = null;
    return advance();
  }

  function setScore(i, score) {
    if (!item) return;
    scores[keys[i]] = score;
    focusDimension(i);
  }

  function submit() {
    if (!item) return;
    const missing = dims.filter((d) => !scores[d.dataset.key]);
    if (missing.length) {
      missing.forEach((d) => d.classList.add("missing"));
      byId("missing").textContent = "Still to score: " + missing.map((d) => d.getAttribute("aria-label")).join(", ");
      byId("missing").hidden = false;
      focusDimension(dims.indexOf(missing[0]));
      return;
    }
    const record = rated.get(item.item);
    const queued = pending.filter((p) => p.item === item.item).pop();
    const values = {
      scores: { ...scores }, note: byId("note").value, corrected_stage: byId("corrected-stage").value,
      corrected_rule_ids: Array.from(byId("corrected-rules").selectedOptions, (o) => o.value),
    };
    const revision = record ? record.revision : item.rating ? item.rating.revision : null;
    pending.push({
      item: item.item, ...values,
      seconds_spent: Math.round((performance.now() - shownAt) / 100) / 10,
      client_id: uuid(),
      // an edit queued behind an unsent save of the same item learns its base revision when that save returns
      base_revision: queued ? null : revision || null,
    });
    if (!record) {
      if (progress && !item.rating) progress.done += 1;
      rated.set(item.item, { served: item, values, revision });
      history.push(item.item);
    } else {
      record.values = values;
    }
    persist();
    flush();
    forward();
  }

  document.addEventListener("keydown", (event) => {
    if (event.metaKey || event.ctrlKey || event.altKey) return;
    const field = event.target.closest("input, textarea, select");
    if (field) {  // keys go to the field; Escape leaves it
      if (event.key === "Escape") { event.preventDefault(); field.blur(); focusDimension(focus); }
      return;
    }
    if (event.target.closest("a")) return;
    const key = event.key;
    const name = key.length === 1 ? key.toLowerCase() : key;
    const actions = {
      Tab: () => focusDimension(focus + (event.shiftKey ? -1 : 1)),
      ArrowDown: () => focusDimension(focus + 1), ArrowUp: () => focusDimension(focus - 1),
      ArrowLeft: back, ArrowRight: forward, Enter: submit,
      n: () => byId("note").focus(),
      "+": () => view.setGain(1.25), "=": () => view.setGain(1.25), "-": () => view.setGain(0.8),
      t: () => view.nextKind(), x: () => view.setGain(null), g: () => { view.guides = !view.guides; view.draw(); },
      "?": () => { byId("help").hidden = !byId("help").hidden; },
      Escape: () => { byId("help").hidden = true; },
    };
    if (/^[1-5]$/.test(key)) { event.preventDefault(); setScore(focus, Number(key)); }
    else if (actions[name]) { event.preventDefault(); actions[name](); }
  });
  dims.forEach((d, i) => {
    d.querySelectorAll(".scale-point").forEach((b) => b.addEventListener("click", () => setScore(i, Number(b.dataset.score))));
    d.addEventListener("click", () => focusDimension(i));
  });
  byId("submit").addEventListener("click", submit);
  byId("show-help").addEventListener("click", () => { byId("help").hidden = false; });
  byId("help").addEventListener("click", () => { byId("help").hidden = true; });
  window.addEventListener("online", flush);

  (async function start() {
    await loadProgress();
    if (pending.length) flush();
    await advance();
    root.dataset.ready = "1";
  })();
})();
