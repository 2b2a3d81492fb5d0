// The rating page: the queue's next rationale under its epoch and the neighbours in the signal view, a 1-5
// score per rubric dimension from the keyboard, an optional note; saves that survive going offline
// (answer_queue.js), 412 when a rating changed elsewhere, time per item, and the items rated on this page
// a key away to change a rating.
(function () {
  const root = document.getElementById("rating");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  const dims = Array.from(document.querySelectorAll(".dimension"));
  const keys = dims.map((d) => d.dataset.key);
  const view = new SignalView(byId("signal-view"), byId("measure-readout"));
  let scores = {};            // dimension key -> 1..5 for the item on screen
  let focus = 0;              // the focused dimension
  let shownAt = performance.now();
  let fresh = null;           // the unrated item left to look back at rated ones
  const rated = new Map();    // item id -> {served, values, revision}: the items rated on this page
  const history = [];         // their ids, in the order rated

  const isRated = (id) => rated.has(id) || queue.queued(id);

  const queue = new AnswerQueue(root, {
    answers: "ratings/", storage: "rating-queue", done: "rated", things: "items", view, show,
    isAnswered: isRated, finished, onBatch() {},
    onSaved(saved) {
      if (rated.has(saved.item)) rated.get(saved.item).revision = saved.revision;
      if (queue.item && queue.item.item === saved.item) showRevision(saved.revision);
    },
    onRefused(entry) { return reload(entry.item); },
  });

  async function reload(id) {  // after a refused save: what the server holds (another tab's rating, or none)
    const record = rated.get(id);
    if (!record || queue.queued(id)) return;
    const response = await queue.call("GET", `${queue.api}ratings/?item=${id}`).catch(() => null);
    if (!response || !response.ok) return;
    const rows = await response.json();
    const current = (rows.results || rows)[0];
    if (current) {
      Object.assign(record, { values: valuesOf(current), revision: current.revision });
    } else {           // a first rating refused (the reservation lapsed): the item is not rated
      rated.delete(id);
      history.splice(history.indexOf(id), 1);
      if (queue.progress) { queue.progress.done -= 1; queue.renderStatus(); }
    }
    if (queue.item && queue.item.item === id) show(queue.item);
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
    queue.item = served;
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
      const data = await queue.signals(served.recording, served.index);
      if (queue.item !== served) return;
      view.show(data);
    } catch (e) {
      byId("measure-readout").textContent = "The signals could not be loaded (offline?).";
    }
    root.dataset.item = String(served.item);
  }

  function finished() {
    if (queue.item && !isRated(queue.item.item)) return;
    queue.item = null;
    byId("work").hidden = true; byId("done").hidden = false; root.dataset.done = "1";
  }

  function back() {
    const item = queue.item;
    const at = item ? history.indexOf(item.item) : -1;
    const previous = at === -1 ? history[history.length - 1] : history[at - 1];
    if (previous === undefined) return;
    if (at === -1 && item) fresh = item;
    show(rated.get(previous).served);
  }

  function forward() {
    const item = queue.item;
    const at = item ? history.indexOf(item.item) : -1;
    if (at !== -1 && at + 1 < history.length) return show(rated.get(history[at + 1]).served);
    if (fresh && !isRated(fresh.item)) { const next = fresh; fresh = null; return show(next); }
    fresh = null;
    return queue.advance();
  }

  function setScore(i, score) {
    if (!queue.item) return;
    scores[keys[i]] = score;
    focusDimension(i);
  }

  function submit() {
    const item = queue.item;
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
    const values = {
      scores: { ...scores }, note: byId("note").value, corrected_stage: byId("corrected-stage").value,
      corrected_rule_ids: Array.from(byId("corrected-rules").selectedOptions, (o) => o.value),
    };
    const revision = record ? record.revision : item.rating ? item.rating.revision : null;
    queue.save({ item: item.item, ...values }, shownAt, revision);
    if (!record) {
      if (queue.progress && !item.rating) { queue.progress.done += 1; queue.renderStatus(); }
      rated.set(item.item, { served: item, values, revision });
      history.push(item.item);
    } else {
      record.values = values;
    }
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

  queue.start();
})();
