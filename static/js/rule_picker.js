// Rule ids picked from the rule catalogue by keys (templates/core/_rule_picker.html): type an id or a word
// of a rule's title or text, ↑ ↓ to choose, Enter to add or remove it, Backspace in the empty box removes
// the last one; Esc leaves (the page's own handler). Clicks work too.
(function (global) {
  class RulePicker {
    constructor(root) {
      this.root = root;
      this.search = root.querySelector(".rule-search");
      this.list = root.querySelector(".rule-options");
      this.chips = root.querySelector(".rule-chosen");
      this.options = Array.from(this.list.children);
      this.chosen = [];
      this.active = null;  // the highlighted option
      this.search.addEventListener("input", () => this.filter());
      this.search.addEventListener("focus", () => this.filter());
      this.search.addEventListener("blur", () => { this.list.hidden = true; });
      this.search.addEventListener("keydown", (event) => this.key(event));
      this.list.addEventListener("mousedown", (event) => {  // keep the focus in the box
        const option = event.target.closest("[data-rule]");
        event.preventDefault();
        if (option) this.toggle(option.dataset.rule);
      });
    }

    get value() { return [...this.chosen]; }

    set(ids) { this.chosen = [...ids]; this.search.value = ""; this.renderChips(); }

    focus() { this.search.focus(); }

    // Options matching every word typed; an id typed exactly, then ids starting with it, come first.
    filter() {
      const query = this.search.value.trim().toLowerCase();
      const words = query.split(/\s+/).filter(Boolean);
      const rank = (o) => { const id = o.dataset.rule.toLowerCase(); return id === query ? 0 : id.startsWith(query) ? 1 : 2; };
      const shown = this.options.filter((o) => words.every((w) => o.dataset.search.includes(w)))
        .sort((a, b) => rank(a) - rank(b));
      this.options.forEach((o) => { o.hidden = !shown.includes(o); });
      this.list.append(...shown);
      this.list.hidden = !shown.length;
      this.highlight(shown[0] || null);
    }

    highlight(option) {
      this.options.forEach((o) => o.classList.toggle("active", o === option));
      this.active = option;
      if (option) option.scrollIntoView({ block: "nearest" });
    }

    key(event) {
      const shown = this.options.filter((o) => !o.hidden);
      const at = shown.indexOf(this.active);
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (this.list.hidden) return this.filter();
        const step = event.key === "ArrowDown" ? 1 : -1;
        this.highlight(shown[(at + step + shown.length) % shown.length] || null);
      } else if (event.key === "Enter") {
        event.preventDefault();
        if (this.active && !this.list.hidden) this.toggle(this.active.dataset.rule);
      } else if (event.key === "Backspace" && !this.search.value && this.chosen.length) {
        this.chosen.pop();
        this.renderChips();
      }
    }

    toggle(id) {
      this.chosen = this.chosen.includes(id) ? this.chosen.filter((c) => c !== id) : [...this.chosen, id];
      this.search.value = "";
      this.renderChips();
      if (document.activeElement === this.search) this.filter();
    }

    renderChips() {
      this.chips.replaceChildren(...this.chosen.map((id) => {
        const chip = Object.assign(document.createElement("li"), { className: "rule-chip" });
        chip.dataset.rule = id;
        const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "×",
          title: `remove ${id}` });
        remove.addEventListener("click", () => this.toggle(id));
        chip.append(id, " ", remove);
        return chip;
      }));
      this.options.forEach((o) => o.setAttribute("aria-selected", String(this.chosen.includes(o.dataset.rule))));
    }
  }

  global.RulePicker = RulePicker;
})(window);
