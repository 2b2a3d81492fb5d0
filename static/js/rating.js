// The rating page: the queue's next rationale under its epoch and the neighbours in the signal view, a 1-5
// score per rubric dimension from the keyboard (a score moves on to the next dimension, Enter submits: four
// keys an item), an optional note and correction; saves that survive going offline (answer_queue.js), 412
// when a rating changed elsewhere, time per item, a quiet word when a rating was quick, and the items rated
// on this page a key away to change a rating.
(function () {
  const root = document.getElementById("rating");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  const dims = Array.from(document.querySelectorAll(".dimension"));
  const keys = dims.map((d) => d.dataset.key);
  const view = new SignalView(byId("signal-view"), byId("measure-readout"));
  const correctedRules = new RulePicker(byId("corrected-rules"));
  let scores = {};            // dimension key -> 1..5 for the item on screen
  let focus = 0;              // the focused dimension
  let fresh = null;           // the unrated item left to look back at rated ones
  const rated = new Map();    // item id -> {served, values, revision}: the items rated on this page
  const history = [];         // their ids, in the order rated

  const queue = new AnswerQueue(root, {
    answers: "ratings/", storage: "rating-queue", done: "rated", things: "items", view, show,
    finished, onBatch() {},
    onSaved(saved) {
      byId("fast-notice").hidden = !saved.fast;
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
      forget(id);
      if (queue.progress) { queue.progress.done -= 1; queue.renderStatus(); }
    }
    if (queue.item && queue.item.item === id) show(queue.item);
  }

  const valuesOf = (r) => ({ scores: { ...r.scores }, note: r.note || "", corrected_stage: r.corrected_stage || "",
    corrected_rule_ids: [...(r.corrected_rule_ids || [])] });

  // An item rated here no longer: its first rating refused, or the queue serves it again (an unannounced
  // re-score, a new answer: the earlier one is not shown).
  function forget(id) {
    rated.delete(id);
    history.splice(history.indexOf(id), 1);
  }

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

  function showEvidence(box, evidence) {
    // Each cited rule's verdict against the measured signal, with its measured values and thresholds.
    const rows = evidence.rules.map((r) => {
      const li = document.createElement("li");
      li.className = `verdict verdict-${r.verdict.replace(" ", "-")}`;
      li.append(Object.assign(document.createElement("strong"), { textContent: `${r.rule} ${r.verdict}` }));
      const why = r.criteria.map((c) => `${c.quantity}${c.channel ? ` (${c.channel})` : ""}: ${c.value_text}, needs ${c.threshold}`);
      if (r.note) why.push(r.note);
      if (why.length) li.append(Object.assign(document.createElement("span"), { className: "muted small", textContent: ` ${why.join("; ")}` }));
      return li;
    });
    const head = Object.assign(document.createElement("p"), { className: "label", textContent: `Evidence check: ${evidence.summary.verdict}` });
    box.replaceChildren(head, Object.assign(document.createElement("ul"), { className: "evidence-list" }));
    box.lastChild.replaceChildren(...rows);
  }

  async function show(served) {
    queue.showing(served);
    byId("work").hidden = false; byId("done").hidden = true;
    if (rated.has(served.item) && rated.get(served.item).served !== served) forget(served.item);  // served again
    const record = rated.get(served.item);
    const values = record ? record.values : served.rating ? valuesOf(served.rating) : valuesOf({ scores: {} });
    scores = { ...values.scores };
    byId("note").value = values.note;
    byId("corrected-stage").value = values.corrected_stage;
    correctedRules.set(values.corrected_rule_ids);
    showRevision(record ? record.revision : served.rating && served.rating.revision);
    const stage = byId("item-stage");
    stage.textContent = served.stage; stage.className = `stage stage-${served.stage}`;
    byId("item-rules").replaceChildren(...served.rules.map((r) => {
      const li = document.createElement("li");
      li.append(Object.assign(document.createElement("strong"), { textContent: r.id }), r.title ? ` · ${r.title}` : "");
      if (r.text) li.append(Object.assign(document.createElement("span"), { className: "rules", textContent: r.text }));
      return li;
    }));
    byId("item-rationale").textContent = served.rationale;
    if (served.evidence && byId("item-evidence")) showEvidence(byId("item-evidence"), served.evidence);
    dims.forEach((d) => d.classList.remove("missing"));
    focusDimension(0);
    try {
      const data = await queue.signals(served.recording, served.index);
      if (queue.item !== served) return;
      view.show(data);
    } catch (e) {
      if (queue.item !== served) return;
      byId("measure-readout").textContent = "The signals could not be loaded (offline?).";
    }
    queue.shown();
  }

  function finished() {
    if (queue.item && !queue.answered(queue.item)) return;
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
    if (fresh && !queue.answered(fresh)) { const next = fresh; fresh = null; return show(next); }
    fresh = null;
    return queue.advance();
  }

  function setScore(i, score) {  // then on to the next dimension (the last one keeps the focus for Enter)
    if (!queue.item) return;
    scores[keys[i]] = score;
    focusDimension(Math.min(i + 1, dims.length - 1));
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
      corrected_rule_ids: correctedRules.value,
    };
    const revision = record ? record.revision : item.rating ? item.rating.revision : null;
    // the rubric version the item was served with: a save after a rubric edit is refused (409), never mismatched
    queue.save({ item: item.item, rubric_version: item.rubric_version, ...values }, revision);
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
    if (AnswerQueue.keyInField(event, () => focusDimension(focus)) || event.target.closest("a")) return;
    const key = event.key;
    const name = key.length === 1 ? key.toLowerCase() : key;
    const actions = {
      Tab: () => focusDimension(focus + (event.shiftKey ? -1 : 1)),
      ArrowDown: () => focusDimension(focus + 1), ArrowUp: () => focusDimension(focus - 1),
      ArrowLeft: back, ArrowRight: forward, Enter: () => { if (queue.takesKeys) submit(); },
      n: () => byId("note").focus(), i: () => correctedRules.focus(),
      "?": () => { byId("help").hidden = !byId("help").hidden; },
      Escape: () => { byId("help").hidden = true; queue.acknowledge(); },
    };
    if (/^[1-5]$/.test(key)) { event.preventDefault(); if (queue.takesKeys) setScore(focus, Number(key)); }
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
