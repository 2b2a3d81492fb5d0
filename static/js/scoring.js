// The scoring page: the fair queue's next item in the signal view, keyboard scoring with auto-advance,
// saves that survive going offline (answer_queue.js), time per epoch, the rater's own hypnogram. In
// rationale mode the rule ids and rationale belong to the epoch shown (empty on a new one, its label's
// own on going back) and a label needs both. In a review campaign the model's stage is shown as a proposal:
// Enter or A accepts it, a stage key corrects it (the server records which).
(function () {
  const root = document.getElementById("scoring");
  if (!root) return;
  const STAGE_KEYS = { w: "W", W: "W", 0: "W", 1: "N1", 2: "N2", 3: "N3", r: "R", R: "R", 5: "R" };
  const COLOURS = { W: "#f2c94c", N1: "#9ad0f5", N2: "#4c9be8", N3: "#2f5fa8", R: "#e5566d" };
  const ORDER = ["W", "R", "N1", "N2", "N3"];
  const view = new SignalView(document.getElementById("signal-view"), document.getElementById("measure-readout"));
  const byId = (id) => document.getElementById(id);
  let items = [];             // the recording's items for this rater: {item, index, stage, uncertain, rule_ids, rationale, revision}
  let uncertain = false;
  const rationaleMode = root.dataset.rationale === "1";
  const rules = rationaleMode ? new RulePicker(byId("rule-ids")) : null;
  const served = new Map();    // item id -> the item as the queue served it (with what the campaign shows)


  const queue = new AnswerQueue(root, {
    answers: "labels/", storage: "scoring-queue", done: "scored", things: "epochs", view, show,
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
      if (row) Object.assign(row, { stage: entry.stage, uncertain: entry.uncertain, rule_ids: entry.rule_ids, rationale: entry.rationale });
    }
    drawHypnogram();
  }

  function drawHypnogram() {
    const item = queue.item;
    const canvas = byId("own-hypnogram");
    if (!canvas) return;  // not shown in blinded single-epoch campaigns: it would tell the time of night
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

  // The rater's answer to the item shown: going back, their latest one; served by the queue, the one it served
  // (none for a first pass, and none for an unannounced re-score: the first answer is not shown again).
  let shownAnswer = null;
  const answerOf = (next) => (next.revisit ? items.find((i) => i.item === next.item) : next.label) || null;

  async function show(next) {
    queue.showing(next);
    const data = await queue.signals(next.recording, next.index);
    view.show(data);
    const row = shownAnswer = answerOf(next);
    uncertain = row ? !!row.uncertain : false;
    if (rationaleMode) {
      rules.set(row && row.rule_ids ? row.rule_ids : []);
      byId("rationale").value = row && row.rationale ? row.rationale : "";
      byId("rationale-missing").hidden = true;
    }
    byId("uncertain").dataset.on = uncertain ? "1" : "0";
    byId("position").textContent = root.dataset.position === "1" ? `epoch ${next.index + 1} of ${next.recording_epoch_count}` : "";
    document.querySelectorAll(".stage-btn").forEach((b) => b.classList.toggle("active", !!row && b.dataset.stage === row.stage));
    byId("current-label").textContent = row && row.stage ? `Your label: ${row.stage}${row.uncertain ? " (uncertain)" : ""}` : "No label yet.";
    showContext(next);
    if (reviewMode) showProposal(next);
    drawHypnogram();
    queue.shown();
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
    if (!queue.answered(queue.item)) queue.upcoming.unshift(queue.item);  // the next one again once back
    const { reference_stage, other_labels, model_outputs, ...base } = queue.item;  // never another epoch's context
    show({ ...(served.get(row.item) || { ...base, item: row.item, index: row.index }), revisit: true });
  }

  // In rationale mode: what the label still lacks, named on the page (nothing is saved); true when complete.
  function rationaleComplete(answer) {
    const missing = [!answer.rule_ids.length && "a rule id", !answer.rationale && "a rationale"].filter(Boolean);
    if (missing.length) {
      byId("rationale-missing").textContent = `Not saved: this campaign collects rationales; add ${missing.join(" and ")} (I, N).`;
      byId("rationale-missing").hidden = false;
    }
    return !missing.length;
  }

  function score(stage) {
    const item = queue.item;
    if (!item) return;
    const row = items.find((i) => i.item === item.item);
    const answer = { stage, uncertain, rule_ids: rationaleMode ? rules.value : [],
      rationale: rationaleMode ? byId("rationale").value.trim() : "" };
    if (rationaleMode && !rationaleComplete(answer)) return;
    queue.save({ item: item.item, recording: item.recording, ...answer }, shownAnswer && shownAnswer.revision);
    if (queue.progress && !(row && row.stage)) { queue.progress.done += 1; queue.renderStatus(); }
    if (row) Object.assign(row, answer); else items.push({ item: item.item, index: item.index, ...answer });
    queue.advance();
  }

  // --- review mode: the model's proposal, accepted with one key ---
  const reviewMode = root.dataset.review === "1";
  function showProposal(item) {
    const box = byId("proposal");
    box.dataset.stage = item.proposal ? item.proposal.stage : "";
    box.textContent = item.proposal
      ? `Model proposes ${item.proposal.stage}${item.proposal.rule_ids.length ? " · " + item.proposal.rule_ids.join(", ") : ""}`
        + " — Enter or A accepts, a stage key corrects."
      : "No model proposal for this epoch: score it with a stage key.";
    if (rationaleMode && item.proposal && !shownAnswer) rules.set(item.proposal.rule_ids);
  }
  function acceptProposal() {
    const item = queue.item;
    if (item && item.proposal && queue.takesKeys) score(item.proposal.stage);
  }

  function toggleUncertain() { uncertain = !uncertain; byId("uncertain").dataset.on = uncertain ? "1" : "0"; }

  document.addEventListener("keydown", (event) => {
    if (event.metaKey || event.ctrlKey || event.altKey || AnswerQueue.keyInField(event)) return;
    const item = queue.item;
    const key = event.key;
    const name = key.length === 1 ? key.toLowerCase() : key;
    const actions = {
      ArrowRight: () => { const later = items.filter((i) => i.index > item.index && i.stage).sort((a, b) => a.index - b.index)[0];
        if (later) goTo(later); else queue.advance(); },
      ArrowLeft: () => { const prev = items.filter((i) => i.index < item.index).sort((a, b) => b.index - a.index)[0]; if (prev) goTo(prev); },
      u: toggleUncertain,
      "?": () => { byId("help").hidden = !byId("help").hidden; },
      Escape: () => { byId("help").hidden = true; queue.acknowledge(); },
      ...(rationaleMode && { i: () => rules.focus(), n: () => byId("rationale").focus() }),
      ...(reviewMode && { Enter: acceptProposal, a: acceptProposal }),
    };
    if (STAGE_KEYS[key]) { event.preventDefault(); if (queue.takesKeys) score(STAGE_KEYS[key]); }
    else if (actions[name] && (item || !name.startsWith("Arrow"))) { event.preventDefault(); actions[name](); }
  });
  document.querySelectorAll(".stage-btn").forEach((b) => b.addEventListener("click", () => score(b.dataset.stage)));
  byId("uncertain").addEventListener("click", toggleUncertain);

  queue.start();
})();
