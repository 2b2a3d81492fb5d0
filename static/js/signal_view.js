// The interactive signal view shared by the scoring and rating pages: an epoch and its neighbours on a canvas in
// the model's colours, in one of two views: "prepared" (as the model saw it: the 100-Hz preparation, .../signals.bin) or
// "clinical" (the recording's own rate with a technologist's filters per channel kind, .../clinical.bin; AASM
// defaults). A time axis in seconds from the current epoch's onset, the three epochs labelled and the current one
// framed; pages of 90, 30, 15 or 10 s; gain per channel or per channel kind, stated as µV per division (a division
// is half a band); traces clipped at their band's edges (an option, on by default); ±37.5 µV guides on EEG, the
// mid-epoch marker, and a measure tool at every page width: drag across a wave to read its duration,
// peak-to-peak amplitude and dominant frequency (on the frontal trace also the slow-wave cover of the N3 rule). Its keys are its own (KEYS), listed in the page's key strip
// (#key-strip) with the technologist's filters below it.
(function (global) {
  const COLOURS = { "F4-M1": "#FFFF00", "C4-M1": "#00FF00", "O2-M1": "#FF0000", LOC: "#00FFFF", ROC: "#FF00FF", "Chin EMG": "#0000FF" };
  const KIND = { "F4-M1": "EEG", "C4-M1": "EEG", "O2-M1": "EEG", LOC: "EOG", ROC: "EOG", "Chin EMG": "EMG" };
  const HALF_RANGE = { EEG: 50, EOG: 50, EMG: 40 };  // µV from a band's centre to its edge at gain 1: one division
  const AASM_FILTERS = { EEG: { hp: 0.3, lp: 35 }, EOG: { hp: 0.3, lp: 35 }, EMG: { hp: 10, lp: 100 } };
  const WIDTHS = [90, 30, 15, 10];
  const EPOCH_S = 30;
  const POSITIONS = ["Preceding", "Current", "Subsequent"];
  const LABEL_W = 96, TOP = 18, AXIS_H = 20;
  const VIEW_NAMES = { model: "prepared", clinical: "clinical" };  // pages never say "model": rating is blind
  const KEYS = [
    ["Z", "page width 90 / 30 / 15 / 10 s"], ["[ ]", "earlier / later page"], ["V", "prepared / clinical view"],
    ["T", "choose a channel or channel kind"], ["+ −", "its gain"], ["X", "reset gains"], ["C", "clip at band edges"],
    ["G", "±37.5 µV guides"], ["drag", "measure"],
  ];

  function dominantFrequency(x, sfreq) {
    const n = x.length;
    if (n < 8) return null;
    const mean = x.reduce((a, b) => a + b, 0) / n;
    let size = 1;
    while (size < 4 * n) size *= 2;
    let best = 0, bestF = null;
    for (let k = 1; k < size / 2; k++) {  // plain DFT over the zero-padded segment: short segments only
      const f = (k * sfreq) / size;
      if (f > 40) break;
      let re = 0, im = 0;
      for (let i = 0; i < n; i++) {
        const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
        const a = (-2 * Math.PI * k * i) / size;
        re += (x[i] - mean) * w * Math.cos(a);
        im += (x[i] - mean) * w * Math.sin(a);
      }
      const p = re * re + im * im;
      if (p > best) { best = p; bestF = f; }
    }
    return bestF;
  }

  const fmt = (v) => String(Number(v.toFixed(2)));

  // N3 helper: the slow-wave definition of the 20 % rule (0.5–2 Hz, ≥ 75 µV peak-to-peak, frontal). The span is
  // smoothed over 0.25 s (keeps the slow waves, drops faster activity); a wave runs from one upward crossing of
  // the span's mean to the next; those lasting 0.5–2 s with ≥ 75 µV p-p are marked covered.
  const SLOW_WAVE = { minS: 0.5, maxS: 2, minPeakToPeak: 75, frontal: "F4-M1" };
  function slowWaveCover(x, sfreq) {
    const half = Math.max(1, Math.round(sfreq / 8));
    const smooth = x.map((_, i) => {
      const from = Math.max(0, i - half), to = Math.min(x.length, i + half + 1);
      let sum = 0;
      for (let k = from; k < to; k++) sum += x[k];
      return sum / (to - from);
    });
    const mean = smooth.reduce((a, b) => a + b, 0) / smooth.length;
    const covered = new Uint8Array(x.length);
    let start = -1;
    for (let i = 1; i < smooth.length; i++) {
      if (!(smooth[i - 1] < mean && smooth[i] >= mean)) continue;
      const seconds = (i - start) / sfreq;
      if (start >= 0 && seconds >= SLOW_WAVE.minS && seconds <= SLOW_WAVE.maxS) {
        const wave = smooth.slice(start, i);
        if (Math.max(...wave) - Math.min(...wave) >= SLOW_WAVE.minPeakToPeak) covered.fill(1, start, i);
      }
      start = i;
    }
    return covered;
  }

  class SignalView {
    // The canvas says how the campaign shows signals: data-view ("model" or "clinical") and data-switchable ("1").
    constructor(canvas, readout) {
      this.canvas = canvas;
      this.readout = readout;
      this.view = canvas.dataset.view === "clinical" ? "clinical" : "model";
      this.switchable = canvas.dataset.switchable === "1";
      this.filters = JSON.parse(JSON.stringify(AASM_FILTERS));
      this.gain = {};            // derivation -> factor
      this.selection = null;     // a derivation or a channel kind, set when the first data arrives
      this.guides = true;
      this.clip = true;
      this.pageWidth = 90;
      this.pageStart = -EPOCH_S;  // seconds from the current epoch's onset
      this.source = null;
      this.data = null;
      this.note = "";
      this.drag = null;
      this.measurement = null;
      canvas.addEventListener("mousedown", (e) => this._start(e));
      canvas.addEventListener("mousemove", (e) => this._move(e));
      window.addEventListener("mouseup", (e) => this._end(e));
      window.addEventListener("resize", () => this.draw());
      document.addEventListener("keydown", (e) => this._key(e));
      this._buildStrip();
    }

    // An epoch's signals: `url` is its .../signals.bin?context=1; the view's data is fetched now, the other view's
    // when asked for. Resolves to the source that `show` takes.
    async load(url) {
      const source = { url, data: new Map() };
      await this._data(source);
      return source;
    }

    _url(source) {
      if (this.view === "model") return source.url;
      const query = Object.entries(this.filters).map(([kind, f]) => {
        const k = kind.toLowerCase();
        return `hp_${k}=${f.hp}&lp_${k}=${f.lp}` + (f.notch === false ? `&notch_${k}=0` : "");
      }).join("&");
      return source.url.replace("/signals.bin", "/clinical.bin") + (source.url.includes("?") ? "&" : "?") + query;
    }

    _data(source) {
      const url = this._url(source);
      if (!source.data.has(url)) {
        const promise = SignalView.fetch(url);
        promise.catch(() => source.data.delete(url));
        source.data.set(url, promise);
      }
      return source.data.get(url);
    }

    static async fetch(url) {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw Object.assign(new Error("signals: HTTP " + response.status), { status: response.status });
      const meta = JSON.parse(response.headers.get("X-Signal-Meta"));
      const raw = new Int16Array(await response.arrayBuffer());
      const width = raw.length / meta.derivations.length;
      meta.rows = meta.derivations.map((_, i) => raw.subarray(i * width, (i + 1) * width));
      meta.width = width;
      return meta;
    }

    show(source) {
      this.source = source;
      this.pageStart = this.pageWidth === 90 ? -EPOCH_S : 0;
      this._clearMeasurement();
      return this._refresh();
    }

    _clearMeasurement() {
      this.measurement = null;
      if (this.readout) { this.readout.textContent = "Drag across a wave to measure it."; delete this.readout.dataset.measured; }
    }

    async _refresh() {
      const source = this.source;
      let data;
      try {
        data = await this._data(source);
        this.note = "";
      } catch (error) {
        if (this.view !== "clinical" || error.status !== 404) throw error;
        this.view = "model";  // a recording imported before native-rate signals were kept
        this.note = "no clinical view for this recording";
        data = await this._data(source);
      }
      if (this.source !== source) return;
      this.data = data;
      if (!this.selection) this.selection = data.derivations[0];
      this.draw();
    }

    // ---- settings, each redrawn at once

    setView(view) {
      if (!this.switchable || view === this.view || !this.source) return;
      this.view = view;
      this._clearMeasurement();  // its samples belong to the other view's rate
      this._refresh();
    }

    setWidth(seconds) {
      this.pageWidth = seconds;
      this.pageStart = seconds === 90 ? -EPOCH_S : 0;
      this.draw();
    }

    pan(direction) {
      if (this.pageWidth === 90) return;
      this.pageStart = Math.min(2 * EPOCH_S - this.pageWidth, Math.max(-EPOCH_S, this.pageStart + direction * this.pageWidth));
      this.draw();
    }

    _selected() {
      const d = this.data;
      return d.derivations.filter((name) => name === this.selection || KIND[name] === this.selection);
    }

    nextSelection() {  // each derivation, then each kind with more than one derivation
      const names = this.data.derivations;
      const kinds = ["EEG", "EOG", "EMG"].filter((k) => names.filter((n) => KIND[n] === k).length > 1);
      const choices = [...names, ...kinds];
      this.selection = choices[(choices.indexOf(this.selection) + 1) % choices.length];
      this.draw();
    }

    setGain(factor) {
      if (factor === null) this.gain = {};
      else for (const name of this._selected()) this.gain[name] = Math.min(16, Math.max(1 / 16, this._gain(name) * factor));
      this.draw();
    }

    _gain(name) { return this.gain[name] || 1; }

    setFilter(kind, key, value) {
      this.filters[kind][key] = value;
      if (this.view === "clinical") this._refresh();
    }

    // ---- keys and the key strip

    _key(event) {
      if (event.target.closest("input, textarea, select, a") || event.metaKey || event.ctrlKey || event.altKey) return;
      if (!this.data) return;
      const actions = {
        z: () => this.setWidth(WIDTHS[(WIDTHS.indexOf(this.pageWidth) + 1) % WIDTHS.length]),
        "[": () => this.pan(-1), "]": () => this.pan(1),
        v: () => this.setView(this.view === "model" ? "clinical" : "model"),
        t: () => this.nextSelection(),
        "+": () => this.setGain(1.25), "=": () => this.setGain(1.25), "-": () => this.setGain(0.8),
        x: () => this.setGain(null),
        c: () => { this.clip = !this.clip; this.draw(); },
        g: () => { this.guides = !this.guides; this.draw(); },
      };
      const action = actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
      if (action) { event.preventDefault(); action(); }
    }

    _buildStrip() {
      const strip = document.getElementById("key-strip");
      if (!strip) return;
      const group = document.createElement("span");
      group.className = "key-group";
      for (const [key, text] of KEYS) {
        if (key === "V" && !this.switchable) continue;
        const item = document.createElement("span");
        item.append(...key.split(" ").map((k) => Object.assign(document.createElement("kbd"), { textContent: k })), " " + text);
        group.append(item);
      }
      this.state = Object.assign(document.createElement("span"), { className: "view-state", id: "view-state" });
      strip.append(group, this.state);
      if (this.switchable || this.view === "clinical") strip.after(this._filterForm());
    }

    _filterForm() {  // the technologist's filters of the clinical view, per channel kind
      const form = document.createElement("details");
      form.className = "filter-form";
      form.innerHTML = "<summary>Clinical filters (AASM defaults)</summary>";
      for (const kind of Object.keys(this.filters)) {
        const row = document.createElement("span");
        row.className = "filter-row";
        row.append(kind);
        for (const [key, label] of [["hp", "high-pass Hz"], ["lp", "low-pass Hz"]]) {
          const input = Object.assign(document.createElement("input"), { type: "number", min: "0", step: "0.1", value: String(this.filters[kind][key]) });
          input.name = `${key}_${kind.toLowerCase()}`;
          input.addEventListener("change", () => { if (input.value !== "" && Number(input.value) >= 0) this.setFilter(kind, key, Number(input.value)); });
          const wrap = document.createElement("label");
          wrap.append(input, " " + label);
          row.append(wrap);
        }
        const notch = Object.assign(document.createElement("input"), { type: "checkbox", checked: true });
        notch.name = `notch_${kind.toLowerCase()}`;
        notch.addEventListener("change", () => this.setFilter(kind, "notch", notch.checked ? undefined : false));
        const wrap = document.createElement("label");
        wrap.append(notch, " mains notch");
        row.append(wrap);
        form.append(row);
      }
      return form;
    }

    _describeState() {
      const d = this.data;
      let text = `${VIEW_NAMES[this.view]} · ${fmt(d.sfreq)} Hz · page ${this.pageWidth} s`;
      if (d.filters) {
        text += " · " + Object.entries(d.filters).map(([kind, f]) =>
          `${kind} ${f.high_pass ? fmt(f.high_pass) : "DC"}–${f.low_pass ? fmt(f.low_pass) + " Hz" : "open"}${f.notch ? `, notch ${fmt(f.notch)}` : ""}`).join("; ");
      }
      text += ` · clipping ${this.clip ? "on" : "off"}`;
      return this.note ? `${text} · ${this.note}` : text;
    }

    // ---- drawing

    _geometry() {
      const d = this.data;
      const width = this.canvas.clientWidth, height = this.canvas.clientHeight;
      const n = d.derivations.length;
      const plot = width - LABEL_W;
      const origin = d.current * d.epoch_samples;  // the current epoch's first sample
      const first = origin + this.pageStart * d.sfreq;  // the page's first sample (may lie before the data)
      const perSample = plot / (this.pageWidth * d.sfreq);
      return { width, height, n, plot, band: (height - TOP - AXIS_H) / n, origin, first, perSample,
               x: (sample) => LABEL_W + (sample - first) * perSample };
    }

    draw() {
      const d = this.data;
      if (!d) return;
      const ratio = window.devicePixelRatio || 1;
      const c = this.canvas;
      c.width = c.clientWidth * ratio; c.height = c.clientHeight * ratio;
      const g = c.getContext("2d");
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      const geo = this._geometry();
      const { x } = geo;
      const bottom = TOP + geo.n * geo.band;
      g.fillStyle = "#000"; g.fillRect(0, 0, geo.width, geo.height);
      g.save();
      g.beginPath(); g.rect(LABEL_W, 0, geo.plot, geo.height); g.clip();
      // the epochs: each labelled, the current one tinted and framed
      g.font = "12px sans-serif"; g.textBaseline = "middle";
      d.indices.forEach((_, e) => {
        const left = x(e * d.epoch_samples), right = x((e + 1) * d.epoch_samples);
        if (Math.min(right, geo.width) - Math.max(left, LABEL_W) > 100) {  // labelled where enough of it is on the page
          g.fillStyle = e === d.current ? "#ffffff" : "#9aa0a8";
          g.fillText(e === d.current ? "Current epoch" : `${POSITIONS[e - d.current + 1]} epoch`, Math.max(left, LABEL_W) + 6, TOP / 2);
        }
        if (e === d.current) {
          g.fillStyle = "rgba(40, 90, 160, 0.18)"; g.fillRect(left, TOP, right - left, bottom - TOP);
          g.strokeStyle = "#e8eef5"; g.lineWidth = 2; g.strokeRect(left + 1, TOP + 1, right - left - 2, bottom - TOP - 2);
        }
      });
      // 1-s and 5-s grid, seconds from the current epoch's onset on the axis
      const from = Math.ceil(this.pageStart), to = Math.floor(this.pageStart + this.pageWidth);
      const labelEvery = this.pageWidth > 30 ? 5 : this.pageWidth > 15 ? 2 : 1;
      g.textAlign = "center";
      for (let s = from; s <= to; s++) {
        const px = x(geo.origin + s * d.sfreq);
        g.strokeStyle = s % EPOCH_S === 0 ? "#8a8f98" : s % 5 === 0 ? "rgba(64,64,64,0.9)" : "rgba(64,64,64,0.55)";
        g.lineWidth = s % 5 === 0 ? 1 : 0.6;
        g.beginPath(); g.moveTo(px, TOP); g.lineTo(px, bottom); g.stroke();
        if (s % labelEvery === 0) {  // kept inside the plot at its edges
          const half = g.measureText(String(s)).width / 2 + 1;
          g.fillStyle = "#9aa0a8"; g.fillText(String(s), Math.min(geo.width - half, Math.max(LABEL_W + half, px)), bottom + AXIS_H / 2);
        }
      }
      g.textAlign = "start";
      const mid = x(geo.origin + (EPOCH_S / 2) * d.sfreq);
      g.strokeStyle = "#ffa64d"; g.setLineDash([4, 4]); g.beginPath(); g.moveTo(mid, TOP); g.lineTo(mid, bottom); g.stroke();
      g.setLineDash([]);
      g.restore();
      g.fillStyle = "#6f7680"; g.font = "11px sans-serif"; g.textBaseline = "middle";
      g.fillText("time (s)", 6, bottom + AXIS_H / 2);
      const visible = [Math.max(0, Math.floor(geo.first) - 1), Math.min(d.width, Math.ceil(geo.first + this.pageWidth * d.sfreq) + 2)];
      const selected = this._selected();
      d.derivations.forEach((name, i) => this._drawChannel(g, geo, name, i, visible, selected.includes(name)));
      if (this.measurement) {
        const m = this.measurement, top = TOP + m.band * geo.band;
        g.fillStyle = "rgba(255,255,255,0.12)"; g.strokeStyle = "#ffffff"; g.lineWidth = 1;
        g.fillRect(x(m.from), top, (m.to - m.from) * geo.perSample, geo.band);
        g.strokeRect(x(m.from), top, (m.to - m.from) * geo.perSample, geo.band);
      }
      if (this.state) this.state.textContent = this._describeState();
      Object.assign(c.dataset, { view: this.view, width: String(this.pageWidth), clip: this.clip ? "1" : "0", gains: JSON.stringify(this.gain) });
      c.dataset.drawn = String(Number(c.dataset.drawn || 0) + 1);
    }

    _drawChannel(g, geo, name, i, [from, to], selected) {
      const d = this.data, kind = KIND[name], gain = this._gain(name);
      const top = TOP + i * geo.band, centre = top + geo.band / 2;
      const perUv = (geo.band / (2 * HALF_RANGE[kind])) * gain;
      g.strokeStyle = "rgba(64,64,64,0.9)"; g.lineWidth = 1;
      if (i > 0) { g.beginPath(); g.moveTo(LABEL_W, top); g.lineTo(geo.width, top); g.stroke(); }
      // name, sensitivity and a one-division scale bar
      g.font = "12px sans-serif"; g.textBaseline = "alphabetic";
      g.fillStyle = selected ? "#ffffff" : "#9aa0a8";
      g.fillText(name, 6, centre - 4);
      g.fillStyle = "#6f7680"; g.font = "11px sans-serif";
      g.fillText(`${fmt(HALF_RANGE[kind] / gain)} µV/div`, 6, centre + 10);
      g.strokeStyle = "#6f7680";
      g.beginPath(); g.moveTo(LABEL_W - 8, centre - geo.band / 4); g.lineTo(LABEL_W - 8, centre + geo.band / 4); g.stroke();
      g.save();
      g.beginPath();
      if (this.clip) g.rect(LABEL_W, top, geo.plot, geo.band); else g.rect(LABEL_W, 0, geo.plot, geo.height);
      g.clip();
      if (this.guides && kind === "EEG") {
        g.strokeStyle = "#969696"; g.setLineDash([3, 5]);
        for (const uv of [37.5, -37.5]) { g.beginPath(); g.moveTo(LABEL_W, centre - uv * perUv); g.lineTo(geo.width, centre - uv * perUv); g.stroke(); }
        g.setLineDash([]);
      }
      const row = d.rows[i];
      g.strokeStyle = COLOURS[name]; g.lineWidth = 1; g.beginPath();
      for (let k = from; k < to; k++) {
        const y = centre - row[k] * d.scale_uv * perUv;
        if (k === from) g.moveTo(geo.x(k), y); else g.lineTo(geo.x(k), y);
      }
      g.stroke();
      g.restore();
    }

    // ---- the measure tool

    _at(event) {
      const box = this.canvas.getBoundingClientRect();
      const geo = this._geometry();
      const sample = Math.round(geo.first + (event.clientX - box.left - LABEL_W) / geo.perSample);
      const band = Math.floor((event.clientY - box.top - TOP) / geo.band);
      return { sample: Math.max(0, Math.min(this.data.width - 1, sample)), band: Math.max(0, Math.min(geo.n - 1, band)) };
    }

    _start(event) { if (this.data) { this.drag = this._at(event); event.preventDefault(); } }

    _move(event) {
      if (!this.drag) return;
      const here = this._at(event);
      this.measurement = { band: this.drag.band, from: Math.min(this.drag.sample, here.sample), to: Math.max(this.drag.sample, here.sample) };
      this.draw();
    }

    _end(event) {
      if (!this.drag) return;
      this._move(event);
      this.drag = null;
      const m = this.measurement;
      if (!m || m.to - m.from < 3) return;
      this.readout.textContent = this.describe(m);
      this.readout.dataset.measured = "1";
    }

    measure(band, fromSample, toSample) {
      const d = this.data;
      const segment = Array.from(d.rows[band].subarray(fromSample, toSample + 1), (v) => v * d.scale_uv);
      const duration = (toSample - fromSample) / d.sfreq;
      const pp = Math.max(...segment) - Math.min(...segment);
      return { derivation: d.derivations[band], duration, peakToPeak: pp, frequency: dominantFrequency(segment, d.sfreq) };
    }

    // The shares of the dragged span and of the current epoch covered by slow waves (frontal trace only).
    slowWaves(band, fromSample, toSample) {
      const d = this.data;
      const segment = Array.from(d.rows[band].subarray(fromSample, toSample + 1), (v) => v * d.scale_uv);
      const covered = slowWaveCover(segment, d.sfreq);
      const origin = d.current * d.epoch_samples;
      let inSpan = 0, inEpoch = 0;
      covered.forEach((c, k) => {
        inSpan += c;
        if (c && fromSample + k >= origin && fromSample + k < origin + d.epoch_samples) inEpoch += 1;
      });
      return { span: inSpan / covered.length, epoch: inEpoch / d.epoch_samples };
    }

    describe(m) {
      const r = this.measure(m.band, m.from, m.to);
      const f = r.frequency === null ? "—" : r.frequency.toFixed(1) + " Hz";
      const text = `${r.derivation}: ${r.duration.toFixed(2)} s · ${r.peakToPeak.toFixed(0)} µV p-p · ${f}`;
      if (r.derivation !== SLOW_WAVE.frontal) return text;
      const sw = this.slowWaves(m.band, m.from, m.to);
      const pct = (v) => `${Math.floor(v * 100)}%`;
      return `${text} · slow waves (0.5–2 Hz, ≥ 75 µV p-p): ${pct(sw.span)} of the span, ${pct(sw.epoch)} of the current epoch (N3: ≥ 20%)`;
    }
  }

  global.SignalView = SignalView;
})(window);
