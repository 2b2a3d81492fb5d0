// The adjudication page: the campaign's disputed epochs one at a time in the shared signal view, with who said
// what and why the epoch is disputed; a stage key, a reason (typed or a preset) and Enter resolve it through
// the adjudication API, without a reload. Nothing is pre-selected.
(function () {
  const root = document.getElementById("adjudication");
  if (!root) return;
  const STAGE_KEYS = { w: "W", W: "W", 0: "W", 1: "N1", 2: "N2", 3: "N3", r: "R", R: "R", 5: "R" };
  const byId = (id) => document.getElementById(id);
  const view = new SignalView(byId("signal-view"), byId("measure-readout"));
  const presets = Array.from(document.querySelectorAll("#presets li"), (li) => li.textContent);
  const reason = byId("reason");
  const disputes = JSON.parse(byId("disputes").textContent);
  let position = 0, stage = null, preset = -1, resolved = 0, saving = false;

  const text = (tag, value, className) => Object.assign(document.createElement(tag), { textContent: value, className: className || "" });
  const stageChip = (value) => text("span", value, `stage stage-${value}`);
  const label = (d) => `epoch ${d.index + 1} of ${d.epoch_count}`;

  function say(message, kind) {
    const box = byId("message");
    box.textContent = message; box.hidden = !message;
    box.classList.toggle("flash", kind === "info");
  }

  function renderQueue() {
    const list = byId("queue");
    list.replaceChildren(...disputes.map((d, i) => {
      const li = text("li", `${label(d)} · ${d.why}`, i === position ? "current" : "");
      li.addEventListener("click", () => go(i));
      return li;
    }));
    byId("remaining").textContent = `${disputes.length} to adjudicate · ${resolved} resolved`;
  }

  function choose(value) {
    stage = value;
    document.querySelectorAll(".stage-btn").forEach((b) => b.classList.toggle("active", b.dataset.stage === value));
    root.dataset.stage = value || "";
  }

  async function go(i) {
    position = Math.max(0, Math.min(disputes.length - 1, i));
    const d = disputes[position];
    delete root.dataset.item;
    choose(null); preset = -1; reason.value = "";
    byId("position").textContent = label(d);
    byId("why").textContent = d.why;
    byId("labels").replaceChildren(...d.labels.map((l) => {
      const tr = document.createElement("tr");
      const cell = document.createElement("td"); cell.append(stageChip(l.stage));
      tr.append(text("td", l.rater), cell);
      if (l.rule_ids) tr.append(text("td", l.rule_ids.join(", ") || "—"));
      return tr;
    }));
    byId("consensus").replaceChildren("Consensus: ", d.tie ? text("strong", "none (tie)") :
      text("strong", `${d.majority}, ${Math.round(100 * d.level)} % of the labels`));
    const shown = [];
    if (d.reference !== undefined) shown.push(`Reference: ${d.reference}`);
    for (const m of d.models || []) shown.push(`${m.model}: ${m.stage}`);
    byId("shown-context").textContent = shown.join(" · ");
    renderQueue();
    const url = root.dataset.signals.replace(/\/0\/epochs\/0\//, `/${d.recording}/epochs/${d.index}/`) + "?context=1";
    try {
      view.show(await view.load(url));
    } catch (e) {
      say(`The signals of ${label(d)} could not be loaded (${e.message}).`);
    }
    if (disputes[position] === d) root.dataset.item = String(d.item);
  }

  function pickPreset(step) {
    const states = presets.length + 1;  // the presets and -1, an empty reason
    preset = ((preset + 1 + step + states) % states) - 1;
    reason.value = preset < 0 ? "" : presets[preset];
    reason.focus();
  }

  async function submit() {
    const d = disputes[position];
    if (!d || saving) return;
    if (!stage) return say("Choose a stage first: W 1 2 3 R.");
    if (!reason.value.trim()) { reason.focus(); return say("Give a reason: type one, or ↓ for a preset."); }
    saving = true;
    byId("save-state").textContent = "saving";
    const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
    let response;
    try {
      response = await fetch(root.dataset.api, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ item: d.item, stage, reason: reason.value.trim() }),
      });
    } catch (e) {
      response = null;
    }
    saving = false;
    if (!response || response.status !== 201) {
      byId("save-state").textContent = "not saved";
      const body = response ? await response.json().catch(() => ({})) : {};
      return say(`Not saved: ${body.detail || JSON.stringify(body) || "no connection"}. Nothing changed; try again.`);
    }
    resolved += 1;
    root.dataset.resolved = String(resolved);
    byId("save-state").textContent = "saved";
    say(`${label(d)} resolved as ${stage}.`, "info");
    reason.blur();
    disputes.splice(position, 1);
    if (disputes.length) go(position);
    else { byId("done").hidden = false; root.dataset.done = "1"; renderQueue(); delete root.dataset.item; }
  }

  document.addEventListener("keydown", (event) => {
    if (event.metaKey || event.ctrlKey || event.altKey || !disputes.length) return;
    const key = event.key;
    const inReason = event.target === reason;
    if (key === "Enter") { event.preventDefault(); return submit(); }
    if (key === "ArrowDown" || key === "ArrowUp") { event.preventDefault(); return pickPreset(key === "ArrowDown" ? 1 : -1); }
    if (inReason) {
      if (key === "Escape") { event.preventDefault(); reason.blur(); }
      return;
    }
    if (event.target.closest("input, textarea, select")) return;
    const actions = {
      ArrowRight: () => go(position + 1), ArrowLeft: () => go(position - 1),
      Escape: () => { choose(null); say(""); },
    };
    const name = key.length === 1 ? key.toLowerCase() : key;
    if (STAGE_KEYS[key]) { event.preventDefault(); choose(STAGE_KEYS[key]); say(""); reason.focus(); }
    else if (actions[name]) { event.preventDefault(); actions[name](); }
  });
  document.querySelectorAll(".stage-btn").forEach((b) => b.addEventListener("click", () => { choose(b.dataset.stage); reason.focus(); }));

  if (disputes.length) go(0);
  else { byId("done").hidden = false; root.dataset.done = "1"; renderQueue(); }
})();
