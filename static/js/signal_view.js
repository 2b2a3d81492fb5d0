// The interactive signal view shared by scoring and rating pages: the prepared signals of an epoch and its
// neighbours (int16 from .../signals.bin) drawn on a canvas in the model's colours and scales; gain per
// channel type (+ and -, t to choose the type, x to reset), ±37.5 µV guides on EEG, the mid-epoch marker,
// and a measure tool: drag across a wave to read its duration, peak-to-peak amplitude and dominant frequency.
(function (global) {
  const COLOURS = { "F4-M1": "#FFFF00", "C4-M1": "#00FF00", "O2-M1": "#FF0000", LOC: "#00FFFF", ROC: "#FF00FF", "Chin EMG": "#0000FF" };
  const KIND = { "F4-M1": "EEG", "C4-M1": "EEG", "O2-M1": "EEG", LOC: "EOG", ROC: "EOG", "Chin EMG": "EMG" };
  const HALF_RANGE = { EEG: 50, EOG: 50, EMG: 40 };
  const KINDS = ["EEG", "EOG", "EMG"];
  const LABEL_W = 78;

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

  class SignalView {
    constructor(canvas, readout) {
      this.canvas = canvas;
      this.readout = readout;
      this.gain = { EEG: 1, EOG: 1, EMG: 1 };
      this.kind = "EEG";
      this.guides = true;
      this.data = null;
      this.drag = null;
      this.measurement = null;
      canvas.addEventListener("mousedown", (e) => this._start(e));
      canvas.addEventListener("mousemove", (e) => this._move(e));
      window.addEventListener("mouseup", (e) => this._end(e));
      window.addEventListener("resize", () => this.draw());
    }

    async load(url) {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error("signals: HTTP " + response.status);
      const meta = JSON.parse(response.headers.get("X-Signal-Meta"));
      const raw = new Int16Array(await response.arrayBuffer());
      const width = raw.length / meta.derivations.length;
      meta.rows = meta.derivations.map((_, i) => raw.subarray(i * width, (i + 1) * width));
      meta.width = width;
      return meta;
    }

    show(meta) {
      this.data = meta;
      this.measurement = null;
      if (this.readout) this.readout.textContent = "Drag across a wave to measure it.";
      this.draw();
    }

    setGain(factor) {
      if (factor === null) this.gain = { EEG: 1, EOG: 1, EMG: 1 };
      else this.gain[this.kind] = Math.min(16, Math.max(1 / 16, this.gain[this.kind] * factor));
      this.draw();
    }

    nextKind() { this.kind = KINDS[(KINDS.indexOf(this.kind) + 1) % KINDS.length]; this.draw(); }

    _geometry() {
      const d = this.data;
      const width = this.canvas.clientWidth, height = this.canvas.clientHeight;
      const n = d.derivations.length;
      return { width, height, n, band: height / n, plot: width - LABEL_W, perSample: (width - LABEL_W) / d.width };
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
      g.fillStyle = "#000"; g.fillRect(0, 0, geo.width, geo.height);
      const seconds = d.width / d.sfreq;
      const x = (sample) => LABEL_W + sample * geo.perSample;
      // current epoch tint, epoch boundaries, 1-s and 5-s grid
      g.fillStyle = "rgba(40, 90, 160, 0.18)";
      g.fillRect(x(d.current * d.epoch_samples), 0, d.epoch_samples * geo.perSample, geo.height);
      for (let s = 1; s < seconds; s++) {
        g.strokeStyle = s % 30 === 0 ? "#8a8f98" : s % 5 === 0 ? "rgba(64,64,64,0.9)" : "rgba(64,64,64,0.55)";
        g.lineWidth = s % 5 === 0 ? 1 : 0.6;
        g.beginPath(); g.moveTo(x(s * d.sfreq), 0); g.lineTo(x(s * d.sfreq), geo.height); g.stroke();
      }
      const mid = x(d.current * d.epoch_samples + d.epoch_samples / 2);
      g.strokeStyle = "#ffa64d"; g.setLineDash([4, 4]); g.beginPath(); g.moveTo(mid, 0); g.lineTo(mid, geo.height); g.stroke();
      g.setLineDash([]);
      d.derivations.forEach((name, i) => {
        const kind = KIND[name];
        const centre = (i + 0.5) * geo.band;
        const perUv = (geo.band / (2 * HALF_RANGE[kind])) * this.gain[kind];
        g.strokeStyle = "rgba(64,64,64,0.9)"; g.lineWidth = 1;
        if (i > 0) { g.beginPath(); g.moveTo(LABEL_W, i * geo.band); g.lineTo(geo.width, i * geo.band); g.stroke(); }
        if (this.guides && kind === "EEG") {
          g.strokeStyle = "#969696"; g.setLineDash([3, 5]);
          for (const uv of [37.5, -37.5]) { g.beginPath(); g.moveTo(LABEL_W, centre - uv * perUv); g.lineTo(geo.width, centre - uv * perUv); g.stroke(); }
          g.setLineDash([]);
        }
        g.fillStyle = kind === this.kind ? "#ffffff" : "#9aa0a8";
        g.font = "12px sans-serif";
        g.fillText(name, 6, centre - 2);
        g.fillStyle = "#6f7680";
        g.fillText("×" + this.gain[kind].toFixed(2).replace(/\.?0+$/, ""), 6, centre + 12);
        const row = d.rows[i];
        g.strokeStyle = COLOURS[name]; g.lineWidth = 1; g.beginPath();
        for (let k = 0; k < row.length; k++) {
          const y = centre - row[k] * d.scale_uv * perUv;
          if (k === 0) g.moveTo(x(k), y); else g.lineTo(x(k), y);
        }
        g.stroke();
      });
      if (this.measurement) {
        const m = this.measurement;
        g.fillStyle = "rgba(255,255,255,0.12)"; g.strokeStyle = "#ffffff";
        g.fillRect(x(m.from), m.band * geo.band, (m.to - m.from) * geo.perSample, geo.band);
        g.strokeRect(x(m.from), m.band * geo.band, (m.to - m.from) * geo.perSample, geo.band);
      }
      this.canvas.dataset.drawn = String(Number(this.canvas.dataset.drawn || 0) + 1);
    }

    _at(event) {
      const box = this.canvas.getBoundingClientRect();
      const geo = this._geometry();
      const sample = Math.round((event.clientX - box.left - LABEL_W) / geo.perSample);
      return { sample: Math.max(0, Math.min(this.data.width - 1, sample)), band: Math.floor((event.clientY - box.top) / geo.band) };
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

    describe(m) {
      const r = this.measure(m.band, m.from, m.to);
      const f = r.frequency === null ? "—" : r.frequency.toFixed(1) + " Hz";
      return `${r.derivation}: ${r.duration.toFixed(2)} s · ${r.peakToPeak.toFixed(0)} µV p-p · ${f}`;
    }
  }

  global.SignalView = SignalView;
})(window);
