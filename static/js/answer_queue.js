// What the scoring and rating pages share: the campaign queue's items reserved ahead, the signal cache,
// and saves without reload that survive going offline (queued in localStorage, sent in order, one loop at
// a time, retried, idempotent by client_id, so never lost and never duplicated); answer keys that count
// only once an item has been shown for the campaign's dwell (a double key press never answers an item the
// rater has not seen); a refused save on screen until acknowledged. A page passes what is its own: the
// answers endpoint, how an item is shown, and what to do when a save lands or is refused.
class AnswerQueue {
  constructor(root, page) {
    this.root = root;
    this.api = root.dataset.api;
    this.page = page;          // {answers, storage, done, things, view, show, finished, onBatch, onSaved, onRefused}
    this.storageKey = `${page.storage}:${root.dataset.campaign}:${root.dataset.user}`;
    this.pending = JSON.parse(localStorage.getItem(this.storageKey) || "[]");
    this.item = null;          // the item on screen (as the queue served it)
    this.shownAt = null;       // when it was drawn (time spent counts from there)
    this.dwell = Number(root.dataset.dwell || 0);  // ms an item is shown before answer keys count
    this.takesKeys = false;    // whether answer keys count now
    this.dwellTimer = null;
    this.progress = null;      // the rater's {done, total} in this campaign (first-pass answers)
    this.upcoming = [];        // items reserved ahead (the queue's order), so work goes on offline
    this.signalCache = new Map();
    this.landings = 0;         // saves landed so far; landedAt: item id -> the count when its last save landed
    this.landedAt = new Map();
    this.flushing = false;     // one save loop at a time: saves go out in order, each once
    this.refilling = null;
    this.advancing = null;     // one move at a time: two could show two items and skip the first
    this.afterSaves = null;    // what to do once every queued save has landed
    this.retrying = null;      // a timer asking the queue again while the page has nothing to show
    this.refused = false;      // whether the queue's last answer was a refusal (not asked again until a key)
    window.addEventListener("online", () => this.flush());
    this.refusal = this.refusalNotice();
  }

  // Keys typed in a field stay there, except Escape, which leaves it (then `left` runs): true when the field
  // takes the key.
  static keyInField(event, left = () => {}) {
    const field = event.target.closest("input, textarea, select");
    if (field && event.key === "Escape") { event.preventDefault(); field.blur(); left(); }
    return !!field;
  }

  // A page starts showing an item: answer keys wait until it has been drawn and seen for the dwell. The
  // root's data-item and data-index name the item only once it takes keys (tests wait for them).
  showing(item) {
    this.item = item;
    this.takesKeys = false;
    clearTimeout(this.dwellTimer);
    delete this.root.dataset.item;
    delete this.root.dataset.index;
  }

  // The item is drawn: time spent counts from now, answer keys once the dwell has passed.
  shown() {
    const item = this.item;
    this.shownAt = performance.now();
    this.dwellTimer = setTimeout(() => {
      if (this.item !== item) return;
      this.takesKeys = true;
      Object.assign(this.root.dataset, { item: String(item.item), index: String(item.index) });
    }, this.dwell);
  }

  // A refused save stays on screen until the rater acknowledges it (its button or Esc); a later "saved"
  // does not replace it.
  refusalNotice() {
    const box = Object.assign(document.createElement("div"), { id: "refusal", className: "refusal", hidden: true });
    box.setAttribute("role", "alert");
    const ok = Object.assign(document.createElement("button"), { type: "button", className: "btn" });
    ok.append("OK ", Object.assign(document.createElement("kbd"), { textContent: "Esc" }));
    ok.addEventListener("click", () => this.acknowledge());
    box.append(document.createElement("span"), " ", ok);
    this.root.querySelector(".scoring-head").after(box);
    return box;
  }

  acknowledge() { this.refusal.hidden = true; }

  refuse(text) {
    this.refusal.firstChild.textContent = `${String(text).replace(/\.$/, "")}.`;
    this.refusal.hidden = false;
  }

  static uuid() {
    return crypto.randomUUID ? crypto.randomUUID() :
      "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) => (c ^ (Math.random() * 16) >> (c / 4)).toString(16));
  }

  call(method, url, body) {
    const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
    return fetch(url, {
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  signals(recording, index) {
    const key = `${recording}:${index}`;
    if (!this.signalCache.has(key)) {
      const url = this.root.dataset.signals.replace(/\/0\/epochs\/0\//, `/${recording}/epochs/${index}/`) + "?context=1";
      const promise = this.page.view.load(url);
      promise.catch(() => this.signalCache.delete(key));
      this.signalCache.set(key, promise);
      if (this.signalCache.size > 24) this.signalCache.delete(this.signalCache.keys().next().value);
    }
    return this.signalCache.get(key);
  }

  setState(text, kind) {
    const el = document.getElementById("save-state");
    el.textContent = text; el.className = "state state-" + kind;
  }

  renderStatus() {
    const n = this.pending.length;
    if (n) this.setState(navigator.onLine ? `saving ${n}…` : `offline: ${n} queued`, "offline");
    if (this.progress) document.getElementById("progress").textContent = `${this.progress.done} of ${this.progress.total} ${this.page.done}`;
  }

  persist() { localStorage.setItem(this.storageKey, JSON.stringify(this.pending)); this.renderStatus(); }

  queued(id) { return this.pending.some((p) => p.item === id); }

  // An item as served is answered once its answer is queued here or has landed since the queue served it.
  // The queue serves an answered item again only when it is due again (an unannounced re-score): that
  // serving is unanswered, and the page must not take it for the earlier one.
  answered(served) {
    return this.queued(served.item) || (this.landedAt.get(served.item) || 0) > (served.sentAt ?? -1);
  }

  lastQueued(id) { return this.pending.filter((p) => p.item === id).pop(); }

  // Queue one answer (the page's fields, with time spent and a client id) and send it. The page moves on
  // from the item: answer keys wait for the next one.
  save(fields, revision) {
    const queued = this.lastQueued(fields.item);
    this.takesKeys = false;
    this.pending.push({
      ...fields,
      seconds_spent: Math.round((performance.now() - this.shownAt) / 100) / 10,
      client_id: AnswerQueue.uuid(),
      // an edit queued behind an unsent save of the same item learns its base revision when that save returns
      base_revision: queued ? null : revision || null,
    });
    this.persist();
    this.flush();
  }

  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.pending.length) {
        const entry = this.pending[0];
        let response;
        try { response = await this.call("POST", this.api + this.page.answers, entry); }
        catch (e) { this.renderStatus(); setTimeout(() => this.flush(), 2000); return; }
        if (response.status === 201 || response.status === 200) {
          const saved = await response.json();
          this.pending.shift();
          this.landedAt.set(saved.item, ++this.landings);
          this.pending.filter((p) => p.item === saved.item).forEach((p) => { p.base_revision = saved.revision; });
          this.persist();
          this.setState("saved", "succeeded");
          this.page.onSaved(saved);
          this.root.dataset.saved = String(Number(this.root.dataset.saved || 0) + 1);
        } else if (response.status >= 500 || response.status === 429) {
          this.renderStatus(); setTimeout(() => this.flush(), 2000); return;
        } else {
          const problem = await response.json().catch(() => ({}));
          this.pending.shift(); this.persist();
          this.setState("not saved", "error");
          this.refuse(`Not saved: ${problem.detail || `HTTP ${response.status}`}`);
          await this.page.onRefused(entry);
        }
      }
      if (this.afterSaves) { const then = this.afterSaves; this.afterSaves = null; then(); }
    } finally {
      this.flushing = false;
    }
  }

  async loadProgress() {
    const response = await this.call("GET", this.api).catch(() => null);
    if (response && response.ok) { this.progress = (await response.json()).progress; this.renderStatus(); }
  }

  refill() {
    if (this.refilling) return this.refilling;
    this.refilling = (async () => {
      try {
        const sentAt = this.landings;
        const response = await this.call("POST", this.api + "ahead/?count=4");
        // a server or proxy hiccup passes: ask again; a refusal (no longer a rater here) stays on screen
        this.refused = !response.ok && response.status < 500 && response.status !== 429;
        if (this.refused) {
          const problem = await response.json().catch(() => ({}));
          this.refuse(`Could not get the next ${this.page.things}: ${problem.detail || `HTTP ${response.status}`}`);
          return;
        }
        if (!response.ok) {
          this.setState(`could not get the next ${this.page.things} (HTTP ${response.status})`, "error");
          this.askAgainSoon(2000);
          return;
        }
        const batch = await response.json();
        batch.forEach((u) => { u.sentAt = sentAt; });
        await this.page.onBatch(batch);
        const known = new Set(this.upcoming.map((u) => u.item).concat(this.item ? [this.item.item] : []));
        this.upcoming = this.upcoming.concat(batch.filter((u) => !known.has(u.item) && !this.answered(u)));
        if (!this.upcoming.length) {
          // Saves still in flight hold the slots of items to come: ask again once they land. Nothing came back:
          // done. Only items answered since the request was sent came back (the queue had not seen those saves
          // yet, and may have re-scores due): moveOn asks again shortly.
          if (this.pending.length) this.afterSaves = () => this.advanceIfAnswered();
          else if (!batch.length) this.page.finished();
        }
      } catch (e) { this.setState(`offline: ${this.pending.length} queued`, "offline"); this.askAgainSoon(2000); }
      finally { this.refilling = null; }
    })();
    return this.refilling;
  }

  advance() {
    if (!this.advancing) this.advancing = this.moveOn().finally(() => { this.advancing = null; });
    return this.advancing;
  }

  async moveOn() {
    this.upcoming = this.upcoming.filter((u) => !this.answered(u) && (!this.item || u.item !== this.item.item));
    if (this.upcoming.length < 2) { const waiting = this.refill(); if (!this.upcoming.length) await waiting; }
    this.upcoming = this.upcoming.filter((u) => !this.answered(u));
    if (this.upcoming.length) {
      await this.page.show(this.upcoming.shift());
      for (const next of this.upcoming.slice(0, 2)) this.signals(next.recording, next.index).catch(() => {});
    } else if (this.item && this.answered(this.item)) {
      this.askAgainSoon(1000);  // the queue answered only with items whose saves are still on their way
    }
  }

  // Ask the queue again after `ms` (one timer at a time; not after a refusal or once the campaign is done).
  askAgainSoon(ms) {
    if (this.retrying || this.refused || this.root.dataset.done) return;
    this.retrying = setTimeout(() => { this.retrying = null; this.advanceIfAnswered(); }, ms);
  }

  // automatic moves (after saves land, on retry) never leave an item the rater has not answered yet
  advanceIfAnswered() { if (!this.item || this.answered(this.item)) this.advance(); }

  async start() {
    await this.loadProgress();
    if (this.pending.length) this.flush();
    await this.advance();
    this.root.dataset.ready = "1";
  }
}
