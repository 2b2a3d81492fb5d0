// Poll an inference job's API resource: state, epochs, rate, ETA, failures.
(function () {
  const root = document.getElementById("inference-job");
  if (!root) return;
  const set = (id, text) => { document.getElementById(id).textContent = text; };
  async function poll() {
    const response = await fetch(root.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) return setTimeout(poll, 3000);
    const job = await response.json();
    const p = job.progress;
    set("job-state", job.state.charAt(0).toUpperCase() + job.state.slice(1));
    document.getElementById("job-state").className = "state state-" + job.state;
    document.getElementById("job-bar").style.width = p.percent + "%";
    set("job-epochs", p.epochs_done + "/" + p.epochs_total);
    set("job-rate", p.epochs_per_s);
    set("job-eta", p.eta_s === null ? "—" : Math.round(p.eta_s) + " s");
    set("job-failures", p.parse_failures);
    set("job-skipped", p.skipped);
    if (job.error) { set("job-error", job.error); document.getElementById("job-error").hidden = false; }
    if (!["succeeded", "failed", "cancelled"].includes(job.state)) setTimeout(poll, 1000);
  }
  poll();
})();
