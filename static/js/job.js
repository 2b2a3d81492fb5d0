// The one job poller: every element [data-job-url] polls its API resource until the job finishes.
// Fields are filled from the JSON by key path (data-job-field="progress.done"); a job that gains a
// `link` id (e.g. the imported recording) shows a button to it (data-link-base ends in 0/). When a job
// the page showed unfinished ends, every [data-refresh-on-job-end] element (with an id) is replaced by
// its fresh copy from the page (a release's counts, files and downloads).
(function () {
  const FINISHED = ["succeeded", "failed", "cancelled"];
  const read = (data, path) => path.split(".").reduce((v, k) => (v == null ? v : v[k]), data);
  const show = (el, value) => {
    if (el.dataset.format === "seconds") return value == null ? "—" : Math.round(value) + " s";
    if (el.dataset.format === "dash") return value ? String(value) : "—";
    return value == null ? "" : String(value);
  };
  function render(root, job) {
    root.querySelectorAll("[data-job-field]").forEach((el) => {
      const key = el.dataset.jobField;
      const value = read(job, key);
      if (key === "state") {
        el.textContent = value.charAt(0).toUpperCase() + value.slice(1);
        el.className = "state state-" + value;
      } else if (key === "error") {
        el.textContent = value || ""; el.hidden = !value;
      } else {
        el.textContent = show(el, value);
      }
    });
    const bar = root.querySelector("[data-job-bar]");
    if (bar) bar.style.width = Math.round(100 * job.progress.fraction) + "%";
    const link = root.querySelector("[data-job-link]");
    if (link && job.link && root.dataset.linkBase && !link.querySelector("a")) {
      const a = document.createElement("a");
      a.className = "btn primary"; a.textContent = job.link_text || "Open";
      a.href = root.dataset.linkBase.replace(/0\/$/, job.link + "/");
      link.appendChild(a); link.hidden = false;
    }
    root.dataset.state = job.state;
  }
  async function refreshSections() {
    const sections = document.querySelectorAll("[data-refresh-on-job-end][id]");
    if (!sections.length) return;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      sections.forEach((el) => {
        const copy = fresh.getElementById(el.id);
        if (copy) el.replaceWith(document.importNode(copy, true));
      });
    } catch (e) { /* the counts stay as they were; a reload shows them */ }
  }
  function follow(root) {
    let ended = FINISHED.includes(root.dataset.state);
    async function poll() {
      let job;
      try {
        const response = await fetch(root.dataset.jobUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) return setTimeout(poll, 3000);
        job = await response.json();
      } catch (e) { return setTimeout(poll, 3000); }
      render(root, job);
      if (!FINISHED.includes(job.state)) return setTimeout(poll, 1000);
      if (!ended) { ended = true; refreshSections(); }
    }
    poll();
  }
  document.querySelectorAll("[data-job-url]").forEach(follow);
})();
