// Poll the import job's API resource and update the progress display until it finishes.
(function () {
  const root = document.getElementById("job");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  async function poll() {
    const response = await fetch(root.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) return setTimeout(poll, 3000);
    const job = await response.json();
    byId("job-state").textContent = job.state.charAt(0).toUpperCase() + job.state.slice(1);
    byId("job-state").className = "state state-" + job.state;
    byId("job-bar").style.width = job.percent + "%";
    byId("job-percent").textContent = job.percent;
    byId("job-epochs").textContent = job.epochs_done + "/" + job.epochs_total;
    byId("job-message").textContent = job.message;
    if (job.error) { byId("job-error").textContent = job.error; byId("job-error").hidden = false; }
    if (job.recording) {
      const link = byId("job-recording");
      link.innerHTML = "";
      const a = document.createElement("a");
      a.className = "btn primary"; a.textContent = "Open recording";
      a.href = root.dataset.recordingBase.replace(/0\/$/, job.recording + "/");
      link.appendChild(a); link.hidden = false;
    }
    if (job.state !== "succeeded" && job.state !== "failed") setTimeout(poll, 1000);
  }
  poll();
})();
