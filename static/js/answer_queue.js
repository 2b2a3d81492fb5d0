// What the scoring and rating pages share: the campaign queue's items reserved ahead, the signal cache,
// and saves without reload that survive going offline (queued in localStorage, sent in order, one loop at
// a time, retried, idempotent by client_id, so never lost and never duplicated). A page passes what is
// its own: the answers endpoint, how an item is shown, whether an item is answered, and what to do when a
// save lands or is refused.
class AnswerQueue {
  constructor(root, page) {
    this.root = root;
    this.api = root.dataset.api;
    this.page = page;          // {answers, storage, done, things, view, show, isAnswered, finished, onBatch, onSaved, onRefused}
    this.storageKey = `${page.storage}:${root.dataset.campaign}:${root.dataset.user}`;
    this.pending = JSON.parse(localStorage.getItem(this.storageKey) || "[]");
    this.item = null;          // the item on screen (as the queue served it)
    this.progress = null;      // the rater's {done, total} in this campaign (first-pass answers)
    this.upcoming = [];        // items reserved ahead (the queue's order), so work goes on offline
    this.signalCache = new Map();
    this.flushing = false;     // one save loop at a time: saves go out in order, each once
    this.refilling = null;
    this.advancing = null;     // one move at a time: two could show two items and skip the first
    this.afterSaves = null;    // what to do once every queued save has landed
    this.retrying = null;      // a timer asking the queue again while the page has nothing to show
    window.addEventListener("online", () => this.flush());
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

  lastQueued(id) { return this.pending.filter((p) => p.item === id).pop(); }

  // Queue one answer (the page's fields, with time spent and a client id) and send it.
  save(fields, shownAt, revision) {
    const queued = this.lastQueued(fields.item);
    this.pending.push({
      ...fields,
      seconds_spent: Math.round((performance.now() - shownAt) / 100) / 10,
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
          this.setState(problem.detail || `not saved (HTTP ${response.status})`, "error");
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
        const response = await this.call("POST", this.api + "ahead/?count=4");
        if (!response.ok) { this.setState(`could not get the next ${this.page.things} (HTTP ${response.status})`, "error"); return; }
        const batch = await response.json();
        await this.page.onBatch(batch);
        const answered = (id) => this.page.isAnswered(id);
        const known = new Set(this.upcoming.map((u) => u.item).concat(this.item ? [this.item.item] : []));
        this.upcoming = this.upcoming.concat(batch.filter((u) => !known.has(u.item) && !answered(u.item)));
        if (!this.upcoming.length && batch.every((u) => answered(u.item))) {
          // only answered items came back: done, unless saves still in flight hold the slots of items to come
          if (this.pending.length) this.afterSaves = () => this.advanceIfAnswered(); else this.page.finished();
        }
      } catch (e) { this.setState(`offline: ${this.pending.length} queued`, "offline"); }
      finally { this.refilling = null; }
    })();
    return this.refilling;
  }

  advance() {
    if (!this.advancing) this.advancing = this.moveOn().finally(() => { this.advancing = null; });
    return this.advancing;
  }

  async moveOn() {
    const answered = (id) => this.page.isAnswered(id);
    this.upcoming = this.upcoming.filter((u) => !answered(u.item) && (!this.item || u.item !== this.item.item));
    if (this.upcoming.length < 2) { const waiting = this.refill(); if (!this.upcoming.length) await waiting; }
    this.upcoming = this.upcoming.filter((u) => !answered(u.item));
    if (this.upcoming.length) {
      await this.page.show(this.upcoming.shift());
      for (const next of this.upcoming.slice(0, 2)) this.signals(next.recording, next.index).catch(() => {});
    } else if (this.item && answered(this.item.item) && !this.root.dataset.done && !this.retrying) {
      // the queue answered only with items whose saves are still on their way: ask again shortly
      this.retrying = setTimeout(() => { this.retrying = null; this.advanceIfAnswered(); }, 1000);
    }
  }

  // automatic moves (after saves land, on retry) never leave an item the rater has not answered yet
  advanceIfAnswered() { if (!this.item || this.page.isAnswered(this.item.item)) this.advance(); }

  async start() {
    await this.loadProgress();
    if (this.pending.length) this.flush();
    await this.advance();
    this.root.dataset.ready = "1";
  }
}
