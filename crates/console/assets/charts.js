// The console's charts: small SVG drawings made from numbers, nothing
// fetched. Each chart states the numbers it drew in data attributes
// (data-total, data-series) and in a table for screen readers, so that
// what is drawn can be checked against the API.
"use strict";

const Charts = (() => {
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  // 1234567 -> "1.2 M"; bytes -> "1.2 MB".
  function human(n, unit) {
    const abs = Math.abs(n);
    const steps = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
    for (const [size, prefix] of steps) {
      if (abs >= size) return `${(n / size).toFixed(abs >= size * 100 ? 0 : 1)} ${prefix}${unit || ""}`;
    }
    return `${n}${unit ? " " + unit : ""}`;
  }

  function timeLabel(t) {
    const d = new Date(t * 1000);
    return d.toISOString().slice(5, 16).replace("T", " ");
  }

  // A screen reader's view of a chart: its numbers as a table.
  function dataTable(caption, head, rows) {
    const table = document.createElement("table");
    table.className = "sr-only";
    const cap = document.createElement("caption");
    cap.textContent = caption;
    table.append(cap);
    const tr = document.createElement("tr");
    for (const h of head) {
      const th = document.createElement("th");
      th.textContent = h;
      tr.append(th);
    }
    table.append(tr);
    for (const row of rows) {
      const r = document.createElement("tr");
      for (const v of row) {
        const td = document.createElement("td");
        td.textContent = String(v);
        r.append(td);
      }
      table.append(r);
    }
    return table;
  }

  // Stacked bars over time: points [{t, values: {key: n}}], series
  // [{key, label, cls}]. The total drawn is in data-total.
  function stackedBars(title, points, series, unit) {
    const figure = document.createElement("figure");
    figure.className = "chart";
    const cap = document.createElement("figcaption");
    cap.textContent = title;
    figure.append(cap);
    const width = 640, height = 220, left = 56, bottom = 28, top = 8;
    const plotW = width - left - 8, plotH = height - bottom - top;
    const totals = points.map(p => series.reduce((s, k) => s + (p.values[k.key] || 0), 0));
    const max = Math.max(1, ...totals);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
    // Axis: three gridlines with their values.
    for (let i = 0; i <= 2; i++) {
      const y = top + plotH - (plotH * i) / 2;
      chart.append(svg("line", { x1: left, x2: width - 8, y1: y, y2: y, class: "grid" }));
      chart.append(svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, human((max * i) / 2, unit)));
    }
    // Bars stand at their window's time, so a gap in the traffic shows
    // as one; a window is as wide as the shortest step between two.
    const times = points.map(p => p.t);
    const steps = times.slice(1).map((t, i) => t - times[i]).filter(d => d > 0);
    const step = steps.length ? Math.min(...steps) : 600;
    const t0 = times.length ? times[0] : 0;
    const span = times.length ? times[times.length - 1] + step - t0 : step;
    const slot = (plotW * step) / span;
    const barW = Math.max(1, Math.min(40, slot * 0.8));
    points.forEach(p => {
      let y = top + plotH;
      const x = left + (plotW * (p.t - t0)) / span + (slot - barW) / 2;
      for (const s of series) {
        const v = p.values[s.key] || 0;
        if (!v) continue;
        const h = (plotH * v) / max;
        y -= h;
        const bar = svg("rect", { x, y, width: barW, height: Math.max(h, 0.5), class: `bar ${s.cls}` });
        bar.append(svg("title", {}, `${timeLabel(p.t)} ${s.label}: ${human(v, unit)}`));
        chart.append(bar);
      }
    });
    // First and last window's times under the axis.
    if (points.length) {
      chart.append(svg("text", { x: left, y: height - 8, class: "axis" }, timeLabel(points[0].t)));
      if (points.length > 1) {
        chart.append(svg("text", { x: width - 8, y: height - 8, class: "axis", "text-anchor": "end" },
          timeLabel(points[points.length - 1].t)));
      }
    }
    figure.append(chart);
    const legend = document.createElement("ul");
    legend.className = "legend";
    const sums = {};
    for (const s of series) {
      sums[s.key] = points.reduce((n, p) => n + (p.values[s.key] || 0), 0);
      const li = document.createElement("li");
      li.className = s.cls;
      li.textContent = `${s.label}: ${human(sums[s.key], unit)}`;
      legend.append(li);
    }
    figure.append(legend);
    figure.dataset.total = String(totals.reduce((a, b) => a + b, 0));
    figure.dataset.series = JSON.stringify(sums);
    figure.append(dataTable(title, ["window", ...series.map(s => s.label)],
      points.map(p => [timeLabel(p.t), ...series.map(s => p.values[s.key] || 0)])));
    if (!points.length) figure.append(empty());
    return figure;
  }

  // Horizontal bars: rows [{label, value, href?}].
  function barList(title, rows, unit) {
    const figure = document.createElement("figure");
    figure.className = "chart bars";
    const cap = document.createElement("figcaption");
    cap.textContent = title;
    figure.append(cap);
    const max = Math.max(1, ...rows.map(r => r.value));
    const list = document.createElement("ol");
    for (const r of rows) {
      const li = document.createElement("li");
      const label = document.createElement(r.href ? "a" : "span");
      label.className = "label";
      label.textContent = r.label;
      label.title = r.label;
      if (r.href) label.href = r.href;
      const bar = document.createElement("span");
      bar.className = "meter";
      const fill = document.createElement("span");
      fill.className = `fill ${r.cls || ""}`;
      fill.style.width = `${(100 * r.value) / max}%`;
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = human(r.value, unit);
      value.title = String(r.value);
      li.append(label, bar, value);
      list.append(li);
    }
    figure.append(list);
    figure.dataset.total = String(rows.reduce((n, r) => n + r.value, 0));
    if (!rows.length) figure.append(empty());
    return figure;
  }

  // A from/to matrix: cells {"from\tto": n}, shaded by value.
  function matrix(title, names, cells, unit) {
    const figure = document.createElement("figure");
    figure.className = "chart matrix";
    const cap = document.createElement("figcaption");
    cap.textContent = title;
    figure.append(cap);
    const max = Math.max(1, ...Object.values(cells));
    const table = document.createElement("table");
    const head = document.createElement("tr");
    head.append(cell("th", "from \\ to"));
    for (const n of names) head.append(cell("th", n));
    table.append(head);
    for (const from of names) {
      const tr = document.createElement("tr");
      tr.append(cell("th", from));
      for (const to of names) {
        const v = cells[`${from}\t${to}`] || 0;
        const td = cell("td", v ? human(v, unit) : "");
        td.title = `${from} → ${to}: ${v}`;
        td.dataset.value = String(v);
        if (v) td.style.setProperty("--heat", (0.15 + (0.85 * v) / max).toFixed(3));
        tr.append(td);
      }
      table.append(tr);
    }
    const wrap = document.createElement("div");
    wrap.className = "scroll";
    wrap.append(table);
    figure.append(wrap);
    figure.dataset.total = String(Object.values(cells).reduce((a, b) => a + b, 0));
    return figure;
  }

  function cell(tag, text) {
    const e = document.createElement(tag);
    e.textContent = text;
    return e;
  }

  function empty() {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No records in this range.";
    return p;
  }

  return { stackedBars, barList, matrix, human };
})();
