// EngramDB UI: the one interactive piece is the facts timeline's as-of slider. Values are read from
// data- attributes and written with textContent only, so stored text can never become markup.
"use strict";
(function () {
  const box = document.getElementById("timeline");
  const slider = document.getElementById("asof");
  if (!box || !slider) return;
  const t0 = Number(box.dataset.t0), t1 = Number(box.dataset.t1);
  const left = Number(box.dataset.left), right = Number(box.dataset.right);
  const line = document.getElementById("asof-line");
  const label = document.getElementById("asof-label");
  const bars = Array.from(box.querySelectorAll("g.fbar"));
  const rows = Array.from(box.querySelectorAll("table.state tr"));
  function redraw() {
    const t = Number(slider.value);
    const x = left + (right - left) * (t - t0) / Math.max(t1 - t0, 1);
    line.setAttribute("x1", x.toFixed(1));
    line.setAttribute("x2", x.toFixed(1));
    // the axis ends a little after the last change, so its end stands for today
    label.textContent = t > t1 - 86400000 ? "now" : new Date(t).toISOString().slice(0, 10);
    const state = {};
    for (const g of bars) {
      const from = Number(g.dataset.from), to = g.dataset.to === "" ? Infinity : Number(g.dataset.to);
      const on = !g.classList.contains("forgotten") && from <= t && t < to;
      g.classList.toggle("active", on);
      if (on) state[g.dataset.attr] = g.dataset.value;
    }
    for (const tr of rows) {
      const v = state[tr.dataset.attr];
      tr.querySelector("td").textContent = v === undefined ? "—" : v;
    }
  }
  slider.addEventListener("input", redraw);
  redraw();
})();
