// Epoch viewer keyboard navigation: left/right, Home/End, c (context), g (guides).
(function () {
  const root = document.querySelector(".viewer");
  if (!root) return;
  const go = (url) => { if (url) window.location.href = url; };
  const epochUrl = (i) => root.dataset.base.replace(/0\/$/, i + "/") + root.dataset.query;
  const toggle = (name) => {
    const params = new URLSearchParams(window.location.search);
    params.set("context", params.get("context") ?? "1");
    params.set("guides", params.get("guides") ?? "1");
    params.set(name, params.get(name) === "1" ? "0" : "1");
    window.location.search = params.toString();
  };
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.metaKey || event.ctrlKey || event.altKey) return;
    const keys = {
      ArrowLeft: () => go(root.dataset.prev),
      ArrowRight: () => go(root.dataset.next),
      Home: () => go(epochUrl(0)),
      End: () => go(epochUrl(Number(root.dataset.count) - 1)),
      c: () => toggle("context"),
      g: () => toggle("guides"),
    };
    if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
  });
  document.getElementById("jump").addEventListener("submit", (event) => {
    event.preventDefault();
    const number = Number(event.target.querySelector("input").value);  // 1-based, as the page counts
    if (Number.isInteger(number) && number >= 1 && number <= Number(root.dataset.count)) go(epochUrl(number - 1));
  });
  root.dataset.ready = "1";
  // Warm the browser cache for the next epoch's page.
  if (root.dataset.next) {
    const link = document.createElement("link");
    link.rel = "prefetch"; link.href = root.dataset.next;
    document.head.appendChild(link);
  }
})();
