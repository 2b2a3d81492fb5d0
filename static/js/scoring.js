// The scoring page: the fair queue's next item in the signal view, keyboard scoring with auto-advance,
// saves that survive going offline (answer_queue.js), time per epoch, the rater's own hypnogram.
(function () {
  const root = document.getElementById("scoring");
  if (!root) return;
  const STAGE_KEYS = { w: "W", W: "W", 0: "W", 1: "N1", 2: "N2", 3: "N3", r: "R", R: "R", 5: "R" };
  const COLOURS = { W: "#f2c94c", N1: "#9ad0f5", N2: "#4c9be8", N3: "#2f5fa8", R: "#e5566d" };
  const ORDER = ["W", "R", "N1", "N2", "N3"];
  const view = new SignalView(document.getElementById("signal-view"), document.getElementById("measure-readout"));
  const byId = (id) => document.getElementById(id);
  let items = [];             // the recording's items for this rater: {item, index, stage, uncertain, revision}
  let uncertain = false;
  let shownAt = performance.now();
  const served = new Map();    // item id -> the item as the queue served it (with what the campaign shows)

  const isScored = (id) => items.some((i) => i.item === id && i.stage) || queue.queued(id);

  const queue = new AnswerQueue(root, {
    answers: "labels/", storage: "scoring-queue", done: "scored", things: "epochs", view, show,
    isAnswered: isScored,
    finished() { byId("done").hidden = false; root.dataset.done = "1"; },
    async onBatch(batch) {
      batch.forEach((u) => served.set(u.item, u));
      const item = queue.item;
      if (batch.length && (!item || item.recording !== batch[0].recording)) await loadHypnogram(batch[0].recording);
    },
    onSaved(saved) {
      const row = items.find((i) => i.item === saved.item);
      if (row) row.revision = saved.revision;
    },
    onRefused(entry) { return loadHypnogram(entry.recording); },
  });

  async function loadHypnogram(recording) {
    const response = await queue.call("GET", `${queue.api}hypnogram/?recording=${recording}`);
    if (!response.ok) return;
    items = await response.json();
    for (const entry of queue.pending) {  // labels not yet on the server still show
      const row = items.find((i) => i.item === entry.item);
      if (row) Object.assign(row, { stage: entry.stage, uncertain: entry.uncertain });
    }
    drawHypnogram();
  }

  function drawHypnogram() {
    const item = queue.item;
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
    queue.item = next;
    const data = await queue.signals(next.recording, next.index);
    view.show(data);
    const row = items.find((i) => i.item === next.item);
    uncertain = row ? !!row.uncertain : false;
    byId("uncertain").dataset.on = uncertain ? "1" : "0";
    byId("position").textContent = `epoch ${next.index + 1} of ${next.recording_epoch_count}`;
    document.querySelectorAll(".stage-btn").forEach((b) => b.classList.toggle("active", !!row && b.dataset.stage === row.stage));
    byId("current-label").textContent = row && row.stage ? `Your label: ${row.stage}${row.uncertain ? " (uncertain)" : ""}` : "No label yet.";
    showContext(next);
    shownAt = performance.now();
    drawHypnogram();
    root.dataset.index = String(next.index);
    root.dataset.item = String(next.item);
  }

  function showContext(item) {  // what the campaign opens to raters: reference, others' labels, model outputs
    const box = byId("context");
    box.replaceChildren();
    const line = (text) => { const p = document.createElement("p"); p.textContent = text; box.append(p); };
    if (item.reference_stage !== undefined) line(`Reference: ${item.reference_stage}`);
    if (item.other_labels !== undefined) line(`Other raters: ${item.other_labels.join(", ") || "none yet"}`);
    for (const output of item.model_outputs || []) {
      line(`${output.model}: ${output.stage}${output.rule_ids.length ? " · " + output.rule_ids.join(", ") : ""}`);
      if (output.rationale) { const q = document.createElement("blockquote"); q.textContent = output.rationale; box.append(q); }
    }
    box.hidden = !box.childElementCount;
  }

  function goTo(row) {
    const { reference_stage, other_labels, model_outputs, ...base } = queue.item;  // never another epoch's context
    show(served.get(row.item) || { ...base, item: row.item, index: row.index });
  }

  function score(stage) {
    const item = queue.item;
    if (!item) return;
    const row = items.find((i) => i.item === item.item);
    queue.save({
      item: item.item, recording: item.recording, stage, uncertain,
      rule_ids: byId("rule-ids") ? Array.from(byId("rule-ids").selectedOptions, (o) => o.value) : [],
      rationale: byId("rationale") ? byId("rationale").value : "",
    }, shownAt, row && row.revision);
    if (queue.progress && !(row && row.stage)) { queue.progress.done += 1; queue.renderStatus(); }
    if (row) Object.assign(row, { stage, uncertain }); else items.push({ item: item.item, index: item.index, stage, uncertain });
    queue.advance();
  }

  function toggleUncertain() { uncertain = !uncertain; byId("uncertain").dataset.on = uncertain ? "1" : "0"; }

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.metaKey || event.ctrlKey || event.altKey) return;
    const item = queue.item;
    const key = event.key;
    const name = key.length === 1 ? key.toLowerCase() : key;
    const actions = {
      ArrowRight: () => { const later = items.filter((i) => i.index > item.index && i.stage).sort((a, b) => a.index - b.index)[0];
        if (later) goTo(later); else queue.advance(); },
      ArrowLeft: () => { const prev = items.filter((i) => i.index < item.index).sort((a, b) => b.index - a.index)[0]; if (prev) goTo(prev); },
      u: toggleUncertain,
      "+": () => view.setGain(1.25), "=": () => view.setGain(1.25), "-": () => view.setGain(0.8),
      t: () => view.nextKind(), x: () => view.setGain(null), g: () => { view.guides = !view.guides; view.draw(); },
      "?": () => { byId("help").hidden = !byId("help").hidden; },
      Escape: () => { byId("help").hidden = true; },
    };
    if (STAGE_KEYS[key]) { event.preventDefault(); score(STAGE_KEYS[key]); }
    else if (actions[name] && (item || !name.startsWith("Arrow"))) { event.preventDefault(); actions[name](); }
  });
  document.querySelectorAll(".stage-btn").forEach((b) => b.addEventListener("click", () => score(b.dataset.stage)));
  byId("uncertain").addEventListener("click", toggleUncertain);

  queue.start();
})();
