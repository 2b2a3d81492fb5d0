// Click on a hypnogram to open the epoch under the pointer.
document.querySelectorAll("svg.hypnogram .hit").forEach((hit) => {
  hit.style.cursor = "pointer";
  hit.addEventListener("click", (event) => {
    const box = hit.getBoundingClientRect();
    const n = Number(hit.dataset.epochs);
    const index = Math.min(n - 1, Math.max(0, Math.floor(((event.clientX - box.left) / box.width) * n)));
    window.location.href = hit.dataset.link.replace("%d", index) + window.location.search;
  });
});
