// Tracklane console: small behaviours only. No inline scripts anywhere (the CSP forbids them):
// pages describe what they need with data- attributes and <script type="application/json"> blocks.
"use strict";

function onReady(run) {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
}

function copyButtons() {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = "value" in source ? source.value : source.textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch (_error) {
        if (source.select) { source.select(); document.execCommand("copy"); }
      }
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  }
}

function menuToggle() {
  for (const button of document.querySelectorAll("[data-toggle]")) {
    const target = document.getElementById(button.dataset.toggle);
    button.addEventListener("click", () => {
      const open = target.classList.toggle("open");
      button.setAttribute("aria-expanded", String(open));
    });
  }
}

function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

// A link builder: inputs with data-link-part="sub1" etc. fill the output named by data-link-output.
function linkBuilders() {
  for (const builder of document.querySelectorAll("[data-link-builder]")) {
    const output = document.getElementById(builder.dataset.linkOutput);
    const base = builder.dataset.linkBase;
    const update = () => {
      const url = new URL(base);
      for (const input of builder.querySelectorAll("[data-link-part]")) {
        if (input.value.trim()) url.searchParams.set(input.dataset.linkPart, input.value.trim());
        else url.searchParams.delete(input.dataset.linkPart);
      }
      output.value = url.toString();
    };
    builder.addEventListener("input", update);
    update();
  }
}

// Time-series charts: <div class="chart" data-chart="ID"> with <script type="application/json" id="ID">
// {"labels": ["2026-01-01", ...], "series": [{"name": "Clicks", "values": [..], "axis": "count"}, ...]}
const PALETTE = ["#2457d6", "#17803d", "#c2410c", "#7c3aed", "#0e7490", "#b42318"];

function charts() {
  if (typeof uPlot === "undefined") return;
  for (const holder of document.querySelectorAll("[data-chart]")) {
    const source = document.getElementById(holder.dataset.chart);
    if (!source) continue;
    const data = JSON.parse(source.textContent);
    if (!data.labels.length) {
      holder.textContent = "No traffic in this range yet.";
      holder.classList.add("empty");
      continue;
    }
    const xs = wallClock(data.labels);
    const series = [data.labels[0].length > 10 ? {} : { value: "{YYYY}-{MM}-{DD}" }]; // days: no time of day
    const columns = [xs];
    const axes = [{}];
    const scales = new Set();
    data.series.forEach((one, index) => {
      const scale = one.axis || "count";
      if (!scales.has(scale)) {
        scales.add(scale);
        axes.push({ scale, side: scales.size === 1 ? 3 : 1, grid: { show: scales.size === 1 } });
      }
      series.push({ label: one.name, scale, stroke: PALETTE[index % PALETTE.length], width: 2 });
      columns.push(one.values.map((value) => (value === null ? null : Number(value))));
    });
    const width = Math.max(280, holder.clientWidth - 16);
    // eslint-disable-next-line no-new
    // Each axis from zero to a little above its largest value (uPlot's own default pads small counts to 100).
    const ranges = { x: { time: true } };
    for (const scale of scales) {
      ranges[scale] = { auto: true, range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] };
    }
    new uPlot({ width, height: 260, series, axes, scales: ranges, tzDate: asUtc }, columns, holder);
  }
}

// A label is a day (2026-01-01) or an hour (2026-01-01T05:00:00+05:45) of the zone the server counted in: the
// chart shows it as written, in whatever zone the browser is, so it is placed at its wall-clock time read as UTC
// and drawn in UTC. An hour a clock change repeats keeps its own place, a second after the first.
function wallClock(labels) {
  let previous = -Infinity;
  return labels.map((label) => {
    const x = Math.max(Date.parse(`${label.slice(0, 19)}${label.length > 10 ? "" : "T00:00:00"}Z`) / 1000, previous + 1);
    previous = x;
    return x;
  });
}

function asUtc(seconds) {
  return uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");
}

onReady(() => {
  copyButtons();
  menuToggle();
  confirmations();
  linkBuilders();
  charts();
});

// The review queue (/ui/review): j next, k previous, a approve, r reject (focuses the reason; a second r or
// Enter sends it), u undo the last decision. The links and buttons work without it.
function reviewKeys() {
  const queue = document.querySelector("[data-review]");
  const undo = document.querySelector("form[data-review-undo]");
  if (!queue && !undo) return;
  const click = (selector) => {
    const target = document.querySelector(selector);
    if (!target) return false;
    if (target.tagName === "FORM") target.requestSubmit();
    else target.click();
    return true;
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.closest && event.target.closest("input, textarea, select");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const actions = {
      j: () => click("[data-review-next]"),
      k: () => click("[data-review-prev]"),
      a: () => click("form[data-review-approve]"),
      u: () => click("form[data-review-undo]"),
      r: () => {
        const reason = document.querySelector("[data-review-reason]");
        if (!reason) return false;
        reason.focus();
        return true;
      },
    };
    const action = actions[event.key];
    if (action && action()) event.preventDefault();
  });
}

onReady(reviewKeys);
