/* Unit viewer for expert interpretation (Claye et al. 2025, Sec 3.3, Fig 9), rendered by
 * the package's viewer module. Vanilla JavaScript, no dependencies, nothing loaded: the data are embedded
 * in the page as base64-encoded UTF-8 JSON. The same code serves the open and the blinded page,
 * so it names no kind of unit itself: every label it shows comes from the embedded data, and a
 * panel whose data the payload lacks (the blinded page strips them) is not drawn at all. */
"use strict";
(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const ANN_SCHEMA = "expert-annotations/1";
  const FLAG_STYLE = {  // badge letter and colour of each gene flag of the package (Okabe-Ito colours)
    ribosomal: ["R", "#CC79A7", "ribosomal protein (RPL/RPS, MRPL/MRPS)"],
    mitochondrial: ["M", "#D55E00", "mitochondrial genome (MT-)"],
    housekeeping: ["H", "#009E73", "housekeeping / ubiquitously high (cited short list)"],
  };

  function bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  const DATA = JSON.parse(new TextDecoder("utf-8").decode(
    bytes(document.getElementById("payload").textContent.trim())));
  const BLIND = DATA.mode === "blinded";
  const STORE_KEY = "unit-viewer:" + DATA.study;
  const ITEMS = DATA.items;
  const BY_ID = new Map(ITEMS.map((it) => [it.id, it]));
  const QUESTIONS = DATA.questions || [];
  const FLAGS = DATA.gene_flags || {};
  const TEXTS = QUESTIONS.map((q) => q.which).concat(["notes"]);
  const UMAPS = {};
  for (const [m, u] of Object.entries(DATA.umaps)) {
    UMAPS[m] = { n: u.n, x: new Uint16Array(bytes(u.x).buffer), y: new Uint16Array(bytes(u.y).buffer) };
  }
  const LABELS = DATA.cell_labels ? { ...DATA.cell_labels, codes: bytes(DATA.cell_labels.codes) } : null;

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  function sv(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmt(v, digits) {
    if (v === null || v === undefined) return "\u2013";
    return Number(v).toPrecision(digits || 3);
  }
  function modelName(m) { return (DATA.model_names && DATA.model_names[m]) || m; }
  function label(it) {
    if (BLIND) return "Item " + it.id.replace(/^item-/, "");
    return modelName(it.model) + " " + it.kind + " " + it.unit;
  }
  function bestPathway(it) { return it.pathways && it.pathways.length ? it.pathways[0].term : ""; }
  function message(text, kind) {
    const m = document.getElementById("msg");
    m.textContent = text;
    m.className = kind || "";
  }
  function badge(gene) {
    const f = FLAGS[gene];
    if (!f) return null;
    return el("span", { class: "badge flag-badge", "data-flag": f, title: FLAG_STYLE[f][2],
                        style: "background:" + FLAG_STYLE[f][1], text: FLAG_STYLE[f][0] });
  }

  // ------------------------------------------------------------------ storage
  let state = { rater: "", annotations: {} };
  let storageOk = true;
  function loadState() {
    try {
      const raw = window.localStorage.getItem(STORE_KEY);
      if (raw) {
        const s = JSON.parse(raw);  // checked like an import: another file:// page shares it
        const anns = isObject(s.annotations) ? s.annotations : {};
        state = { rater: typeof s.rater === "string" ? s.rater.slice(0, LIMITS.short) : "", annotations: {} };
        for (const [id, ann] of Object.entries(anns)) {
          if (BY_ID.has(id) && !checkAnnotation(id, ann)) state.annotations[id] = ann;
        }
      }
    } catch (e) {
      storageOk = false;
    }
  }
  function saveState() {
    try {
      window.localStorage.setItem(STORE_KEY, JSON.stringify(state));
      return true;
    } catch (e) {
      storageOk = false;
      message("This browser does not let the page store answers (localStorage is blocked): " +
              "use Export JSON before closing the page.", "error");
      return false;
    }
  }
  function raterId() { return document.getElementById("rater").value.trim(); }
  function needRater(where) {
    if (raterId()) return false;
    const r = document.getElementById("rater");
    where.textContent = "Enter your rater id (top of the annotation column) first: " +
      "every rating must name its rater.";
    r.focus();
    return true;
  }

  // ------------------------------------------------------------------ list and filters
  let current = null;
  const filters = {};
  function distinct(values) { return Array.from(new Set(values)).sort(); }
  function addFilter(name, title, values) {
    const sel = el("select", { id: "filter-" + name, onchange: renderList });
    sel.append(el("option", { value: "", text: "all" }));
    for (const [v, t] of values) sel.append(el("option", { value: v, text: t }));
    filters[name] = sel;
    document.getElementById("filters").append(el("label", {}, title + " ", sel));
  }
  function buildFilters() {
    if (!BLIND) {
      addFilter("model", "Model", DATA.models.map((m) => [m, modelName(m)]));
      addFilter("kind", "Unit type", distinct(ITEMS.map((i) => i.kind)).map((k) => [k, k]));
      addFilter("category", "Category (Sec 3.1)", distinct(ITEMS.map((i) => i.category)).map((c) => [c, c]));
      const pw = distinct(ITEMS.map(bestPathway).filter((p) => p)).map((p) => [p, p]);
      pw.push(["(none)", "(no pathway)"]);
      addFilter("pathway", "Best pathway", pw);
    }
    addFilter("status", "Status", [["done", "annotated"], ["todo", "not annotated"]]);
    document.getElementById("search").addEventListener("input", renderList);
  }
  function matches(it) {
    const f = (n) => (filters[n] ? filters[n].value : "");
    if (f("model") && it.model !== f("model")) return false;
    if (f("kind") && it.kind !== f("kind")) return false;
    if (f("category") && it.category !== f("category")) return false;
    if (f("pathway")) {
      const b = bestPathway(it);
      if (f("pathway") === "(none)" ? b !== "" : b !== f("pathway")) return false;
    }
    const done = Boolean(state.annotations[it.id]);
    if (f("status") === "done" && !done) return false;
    if (f("status") === "todo" && done) return false;
    const q = document.getElementById("search").value.trim().toLowerCase();
    if (!q) return true;
    const hay = [label(it), ...it.genes];
    if (!BLIND) {
      hay.push(it.category, ...it.pathways.map((p) => p.term),
        ...Object.values(it.metadata).flat().map((r) => r[0]));
    }
    for (const g of it.genes) if (DATA.gene_info[g]) hay.push(DATA.gene_info[g][0]);
    return hay.join("\n").toLowerCase().includes(q);
  }
  function shownItems() { return ITEMS.filter(matches); }
  function renderList() {
    const ul = document.getElementById("item-list");
    ul.replaceChildren();
    const shown = shownItems();
    for (const it of shown) {
      const done = state.annotations[it.id];
      const btn = el("button", { type: "button", class: "item" + (current === it.id ? " active" : ""),
                                 "data-id": it.id, onclick: () => select(it.id) },
        el("span", { class: done ? "done" : "", text: (done ? "\u2713 " : "") + label(it) }),
        BLIND ? null : el("span", { class: "sub", text: modelName(it.model) + " \u00b7 " + it.category +
                                    (bestPathway(it) ? " \u00b7 " + bestPathway(it) : "") }));
      ul.append(el("li", {}, btn));
    }
    document.getElementById("count").textContent = shown.length + " of " + ITEMS.length + " items";
    const n = ITEMS.filter((i) => state.annotations[i.id]).length;
    document.getElementById("progress").textContent = n + " of " + ITEMS.length + " annotated";
    updateNav();
  }
  // previous / next walk the items the search and filters show, in list order
  function step(delta) {
    const shown = shownItems();
    if (!shown.length) return;
    const i = shown.findIndex((it) => it.id === current);
    const j = i < 0 ? (delta > 0 ? 0 : shown.length - 1) : (i + delta + shown.length) % shown.length;
    select(shown[j].id);
  }
  function updateNav() {
    const shown = shownItems();
    const i = shown.findIndex((it) => it.id === current);
    document.getElementById("nav-pos").textContent = (i < 0 ? "not in the list" : (i + 1) + " of " + shown.length) +
      (shown.length < ITEMS.length ? " shown" : "");
    document.getElementById("prev-btn").disabled = !shown.length;
    document.getElementById("next-btn").disabled = !shown.length;
  }

  // ------------------------------------------------------------------ tooltip
  const tip = document.getElementById("tooltip");
  function showTip(evt, nodes) {
    tip.replaceChildren(...nodes);
    tip.hidden = false;
    const x = Math.min(evt.clientX + 14, window.innerWidth - 350);
    tip.style.left = Math.max(0, x) + "px";
    tip.style.top = (evt.clientY + 14) + "px";
  }
  function hideTip() { tip.hidden = true; }
  function geneTip(it, i) {
    const g = it.genes[i];
    const info = DATA.gene_info[g] || ["", ""];
    const pp = it.per_prototype[i].filter((v) => v !== null).map((v) => fmt(v, 2));
    return [el("b", { text: g }), " \u2014 " + (info[0] || "no description in the bundled gene table"),
      el("br"), "type: " + (info[1] || "unknown"),
      FLAGS[g] ? el("br") : null, FLAGS[g] ? "flag: " + FLAG_STYLE[FLAGS[g]][2] : null,
      el("br"), "mean attribution: " + fmt(it.attribution[i]),
      el("br"), "per prototype: " + pp.join(", ")].filter((x) => x !== null);
  }

  // ------------------------------------------------------------------ panels
  function flagLegend() {
    const box = el("div", { class: "legend", id: "flag-legend" });
    for (const [f, [letter, colour, text]] of Object.entries(FLAG_STYLE)) {
      box.append(el("span", {}, el("span", { class: "badge", style: "background:" + colour, text: letter }), " " + text));
    }
    return box;
  }
  function attributionChart(it) {
    const rows = it.genes.length, rh = 18, left = 112, right = 16, top = 8, width = 580;
    const height = top + rows * rh + 28;
    const vals = it.attribution.concat(...it.per_prototype).filter((v) => v !== null);
    const lo = Math.min(0, ...vals), hi = Math.max(0, ...vals);
    const span = (hi - lo) || 1;
    const X = (v) => left + ((v - lo) / span) * (width - left - right);
    const svg = sv("svg", { viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
                            "aria-label": "attribution of the top genes" });
    svg.append(sv("line", { x1: X(0), x2: X(0), y1: top, y2: top + rows * rh, stroke: "#999" }));
    it.genes.forEach((g, i) => {
      const y = top + i * rh, f = FLAGS[g];
      const grp = sv("g", { class: "gene-row", "data-gene": g });
      const v = it.attribution[i] || 0;
      grp.append(sv("rect", { x: Math.min(X(0), X(v)), y: y + 3, width: Math.abs(X(v) - X(0)),
                              height: rh - 6, fill: f ? "#A9B8CF" : "#4C72B0" }));
      for (const p of it.per_prototype[i]) {
        if (p === null) continue;
        grp.append(sv("circle", { class: "proto-dot", cx: X(p), cy: y + rh / 2, r: 2.3, fill: "#000", "fill-opacity": 0.45 }));
      }
      if (f) {
        const b = sv("g", { class: "flag-badge", "data-flag": f });
        b.append(sv("rect", { x: 2, y: y + 3, width: 14, height: rh - 6, rx: 3, fill: FLAG_STYLE[f][1] }));
        b.append(sv("text", { x: 9, y: y + rh / 2 + 3, "text-anchor": "middle" }, FLAG_STYLE[f][0]));
        grp.append(b);
      }
      const txt = sv("text", { x: left - 6, y: y + rh / 2 + 4, "text-anchor": "end", class: "gene-label",
                               "data-gene": g }, g);
      grp.append(txt);
      grp.append(sv("rect", { x: 0, y: y, width: width, height: rh, fill: "transparent" }));
      grp.addEventListener("mousemove", (e) => { txt.classList.add("hover"); showTip(e, geneTip(it, i)); });
      grp.addEventListener("mouseleave", () => { txt.classList.remove("hover"); hideTip(); });
      svg.append(grp);
    });
    const yAxis = top + rows * rh + 14;
    for (const v of [lo, 0, hi]) {  // skip a tick that would overlap the zero tick
      if (v !== 0 && Math.abs(X(v) - X(0)) < 36) continue;
      svg.append(sv("text", { x: X(v), y: yAxis, "text-anchor": "middle" }, fmt(v, 2)));
    }
    svg.append(sv("text", { x: (left + width) / 2, y: yAxis + 12, "text-anchor": "middle" },
      BLIND ? "attribution (share of the prototypes' mean activation)" : "attribution (activation drop)"));
    const table = el("table", { class: "pp-table" });
    const head = el("tr", {}, el("th", { text: "gene" }), el("th", { text: "mean" }));
    (it.per_prototype[0] || []).forEach((_, j) => head.append(el("th", { text: "p" + (j + 1) })));
    table.append(head);
    it.genes.forEach((g, i) => {
      const tr = el("tr", { "data-gene": g }, el("td", {}, g + " ", badge(g)),
        el("td", { class: "num", text: fmt(it.attribution[i]) }));
      for (const p of it.per_prototype[i]) tr.append(el("td", { class: "num", text: fmt(p, 2) }));
      table.append(tr);
    });
    const dots = BLIND
      ? "dots: " + DATA.shown.prototypes + " prototype cells (the same number for every item)"
      : "dots: each prototype cell";
    return el("section", { class: "panel wide", id: "panel-attribution" },
      el("h3", { text: "Gene attribution (top " + rows + ")" }), svg, flagLegend(),
      el("div", { class: "caption", text: "Bars: mean over prototype cells and counterfactuals " +
        "(Eq 3), pale when the gene is flagged; " + dots + ". Hover a gene for its NCBI description." }),
      el("details", {}, el("summary", { text: "Per-prototype values" }), table));
  }
  function flagNote(it) {
    const top = it.genes.slice(0, 10), counts = {};
    for (const g of top) if (FLAGS[g]) counts[FLAGS[g]] = (counts[FLAGS[g]] || 0) + 1;
    const n = Object.values(counts).reduce((a, b) => a + b, 0);
    if (!n) return null;
    const parts = Object.keys(FLAG_STYLE).filter((f) => counts[f]).map((f) => counts[f] + " " + f);
    return el("div", { class: "flag-note", id: "flag-note" },
      n + " of the top " + top.length + " genes are flagged (" + parts.join(", ") + "): genes " +
      "expressed in every cell, which may reflect counts rather than a cell programme.");
  }

  function metadataPanel(it) {
    const box = el("section", { class: "panel", id: "panel-metadata" }, el("h3", { text: "Metadata of activating cells (Sec 3.1)" }));
    const keys = Object.keys(it.metadata);
    if (!keys.length) box.append(el("p", { text: "No metadata key with at least two values." }));
    for (const k of keys) {
      box.append(el("div", { class: "caption", text: k }));
      for (const [lab, r] of it.metadata[k]) {
        box.append(el("div", { class: "ratio-row" },
          el("span", { class: "ratio-label", title: lab, text: lab }),
          el("div", {}, el("div", { class: "ratio-bar", style: "width:" + Math.round(100 * (r || 0)) + "%" })),
          el("span", { class: "num", text: (r > 0 && r < 0.01) ? "<1%" : Math.round(100 * (r || 0)) + "%" })));
      }
    }
    box.append(el("div", { class: "caption", text: "Category: " + it.category }));
    return box;
  }

  function histogramPanel(it) {
    const counts = it.hist.counts, n = counts.length, w = 300, h = 140, pad = 24;
    const max = Math.max(1, ...counts);
    const svg = sv("svg", { viewBox: "0 0 " + w + " " + (h + 30), width: "100%", role: "img",
                            "aria-label": "activation histogram" });
    const bw = (w - pad) / n;
    counts.forEach((c, i) => {
      const bh = (c / max) * h;
      svg.append(sv("rect", { x: pad + i * bw, y: h - bh, width: Math.max(bw - 1, 1), height: bh, fill: "#8172B2" }));
    });
    svg.append(sv("line", { x1: pad, x2: w, y1: h, y2: h, stroke: "#999" }));
    svg.append(sv("text", { x: pad, y: h + 13, "text-anchor": "start" }, "0"));
    svg.append(sv("text", { x: w, y: h + 13, "text-anchor": "end" }, fmt(it.hist.max)));
    svg.append(sv("text", { x: 2, y: 10 }, String(max)));
    svg.append(sv("text", { x: (w + pad) / 2, y: h + 26, "text-anchor": "middle" }, "activation"));
    return el("section", { class: "panel", id: "panel-histogram" }, el("h3", { text: "Activation histogram" }), svg,
      el("div", { class: "caption", text: it.n_cells + " of " + it.n_total + " cells activate (value > 0); " +
        "the histogram shows those cells." }));
  }

  function umapCanvas(id, u, paint) {
    const size = 320, canvas = el("canvas", { width: size, height: size, id: id });
    const ctx = canvas.getContext("2d");
    const px = (i) => 4 + (u.x[i] / 65535) * (size - 8), py = (i) => size - 4 - (u.y[i] / 65535) * (size - 8);
    paint(ctx, px, py);
    return canvas;
  }
  function umapPanel(it) {
    const u = UMAPS[it.umap || it.model], q = bytes(it.cells);
    const figs = [];
    if (LABELS) {
      const canvas = umapCanvas("umap-types", u, (ctx, px, py) => {
        for (let i = 0; i < u.n; i++) {
          ctx.fillStyle = LABELS.colors[LABELS.codes[i]];
          ctx.fillRect(px(i) - 1, py(i) - 1, 2.5, 2.5);
        }
      });
      canvas.setAttribute("aria-label", "UMAP coloured by " + LABELS.key);
      const legend = el("div", { class: "legend", id: "umap-legend" });
      LABELS.labels.forEach((lab, k) => legend.append(el("span", { "data-color": LABELS.colors[k] },
        el("span", { class: "swatch", style: "background:" + LABELS.colors[k] }), lab)));
      figs.push(el("figure", {}, canvas, el("figcaption", { text: "Cells by " + LABELS.key }), legend));
    }
    const on = [];
    for (let i = 0; i < u.n; i++) if (q[i] > 0) on.push(i);
    on.sort((a, b) => q[a] - q[b]);
    const canvas = umapCanvas("umap-canvas", u, (ctx, px, py) => {
      ctx.fillStyle = "#d5d5d5";
      for (let i = 0; i < u.n; i++) ctx.fillRect(px(i) - 1, py(i) - 1, 2, 2);
      for (const i of on) {
        const t = (q[i] - 1) / 254;  // light orange to dark red
        ctx.fillStyle = "rgb(" + Math.round(253 - 120 * t) + "," + Math.round(190 - 180 * t) + "," + Math.round(90 - 60 * t) + ")";
        ctx.fillRect(px(i) - 1.5, py(i) - 1.5, 3, 3);
      }
    });
    canvas.setAttribute("aria-label", "UMAP with activating cells");
    const caption = BLIND
      ? "The " + DATA.shown.cells + " most activating of the " + u.n + " cells drawn (the same number " +
        "for every item; darker = higher rank); grey: the others."
      : on.length + " of " + u.n + " cells drawn activate (orange to dark red: share of the maximum " +
        "activation); grey: not activating.";
    figs.push(el("figure", {}, canvas, el("figcaption", { text: caption })));
    return el("section", { class: "panel wide", id: "panel-umap" },
      el("h3", { text: BLIND ? "Most activating cells on the UMAP" : "Activating cells on the UMAP" }),
      el("div", { class: "umaps" }, ...figs));
  }

  function pathwayPanel(it) {
    const box = el("section", { class: "panel wide", id: "panel-pathways" },
      el("h3", { text: "Best GO pathways (attribution-based GSEA, Sec 3.4)" }));
    if (!it.pathways.length) {
      box.append(el("p", { text: "No positively enriched pathway." }));
      return box;
    }
    const t = el("table", {}, el("tr", {}, el("th", { text: "pathway" }), el("th", { text: "NES" }),
      el("th", { text: "p (nominal)" }), el("th", { text: "FDR" })));
    for (const p of it.pathways) {
      t.append(el("tr", {}, el("td", { text: p.term }), el("td", { class: "num", text: fmt(p.nes) }),
        el("td", { class: "num", text: fmt(p.p, 2) }), el("td", { class: "num", text: fmt(p.fdr, 2) })));
    }
    box.append(t);
    return box;
  }

  // ------------------------------------------------------------------ annotation form
  function radio(name, value, text) {
    return el("label", {}, el("input", { type: "radio", name: name, value: value }), " " + text + " ");
  }
  function annotationForm(it) {
    const form = el("form", { id: "ann-form", novalidate: true });
    for (const q of QUESTIONS) {
      const which = q.id === "process"
        ? el("textarea", { name: q.which, placeholder: q.hint })
        : el("input", { type: "text", name: q.which, placeholder: q.hint });
      form.append(el("fieldset", { "data-question": q.id }, el("legend", { text: q.legend }),
        el("p", { text: q.text }), ...q.choices.map(([v, t]) => radio(q.id, v, t)), which));
    }
    form.append(el("label", {}, "Free text", el("textarea", { name: "notes", placeholder: "Anything else" })),
      el("div", { id: "form-error", role: "alert" }),
      el("button", { type: "submit", id: "save-btn", text: "Save annotation" }),
      el("span", { id: "save-status" }));
    const prev = state.annotations[it.id];
    if (prev) {
      // values compared, never put into a selector
      for (const r of form.querySelectorAll("input[type=radio]")) r.checked = prev[r.name] === r.value;
      for (const k of TEXTS) form.elements[k].value = prev[k] || "";
      form.querySelector("#save-status").textContent = "Already annotated on " + prev.saved_at;
    }
    form.addEventListener("submit", (e) => { e.preventDefault(); saveForm(it, form); });
    return form;
  }
  function saveForm(it, form) {
    const ann = {};
    const err = form.querySelector("#form-error");
    if (needRater(err)) return;
    for (const q of QUESTIONS) {
      const r = form.querySelector("input[name=" + q.id + "]:checked");
      if (!r) { err.textContent = "Please answer every question (" + q.legend.toLowerCase() + ")."; return; }
      ann[q.id] = r.value;
    }
    for (const k of TEXTS) ann[k] = form.elements[k].value.trim();
    for (const q of QUESTIONS) {
      if (ann[q.id] === "yes" && !ann[q.which]) { err.textContent = q.hint; return; }
    }
    err.textContent = "";
    ann.saved_at = new Date().toISOString();
    state.annotations[it.id] = ann;
    const ok = saveState();
    form.querySelector("#save-status").textContent = ok ? "Saved " + ann.saved_at : "Not stored: export now";
    renderList();
  }

  // ------------------------------------------------------------------ item view
  function select(id) {
    const it = BY_ID.get(id);
    if (!it) return;
    current = id;
    hideTip();
    const meta = BLIND ? null : el("div", { class: "meta", text: "Model: " + modelName(it.model) +
      " \u00b7 category: " + it.category + " \u00b7 " + it.n_cells + " activating cells" });
    const panels = [attributionChart(it), umapPanel(it)];
    if (it.metadata) panels.push(metadataPanel(it));
    if (it.hist) panels.push(histogramPanel(it));
    if (it.pathways) panels.push(pathwayPanel(it));
    document.getElementById("detail").replaceChildren(...[
      el("h2", { id: "item-title", text: label(it) }), meta, flagNote(it),
      el("div", { class: "panels" }, ...panels)].filter((n) => n !== null));
    document.getElementById("form-slot").replaceChildren(annotationForm(it));
    renderList();
  }

  // ------------------------------------------------------------------ export / import
  function exportJson() {
    if (needRater(document.getElementById("msg"))) { message(document.getElementById("msg").textContent, "error"); return; }
    state.rater = raterId();
    saveState();
    const doc = { schema: ANN_SCHEMA, study: DATA.study, mode: DATA.mode, rater: state.rater,
                  questions: QUESTIONS.map((q) => q.id), exported_at: new Date().toISOString(),
                  n_items: ITEMS.length, annotations: state.annotations };
    const a = el("a", { href: URL.createObjectURL(new Blob([JSON.stringify(doc, null, 1)], { type: "application/json" })),
                        download: "annotations_" + DATA.study + "_" + state.rater.replace(/[^A-Za-z0-9_-]+/g, "_") + ".json" });
    document.body.append(a);
    a.click();
    a.remove();
    message("Exported " + Object.keys(state.annotations).length + " annotation(s).", "ok");
  }
  // An imported file is untrusted (it comes from another rater's machine): it is checked
  // against the export schema (types, allowed answers, sizes) before anything is kept, and its
  // text is only ever set as text (textContent / form values), never parsed as HTML.
  const LIMITS = DATA.limits;  // the package's annotations.IMPORT_LIMITS
  function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function checkAnnotation(id, ann) {
    if (!isObject(ann)) return "the annotation of " + id + " is not an object";
    const allowed = new Set(TEXTS.concat(QUESTIONS.map((q) => q.id), ["saved_at"]));
    for (const [k, v] of Object.entries(ann)) {
      if (!allowed.has(k)) return "the annotation of " + id + " has an unknown field " + JSON.stringify(k.slice(0, 40));
      if (typeof v !== "string") return "field " + k + " of " + id + " is not text";
      const limit = k === "saved_at" ? LIMITS.short : LIMITS.text;
      if (v.length > limit) return "field " + k + " of " + id + " is longer than " + limit + " characters";
    }
    for (const q of QUESTIONS) {
      const ok = q.choices.map(([v]) => v);
      if (!ok.includes(ann[q.id])) return "the answer " + q.id + " of " + id + " is not one of " + ok.join(", ");
    }
    return "";
  }
  function checkImport(doc) {
    if (!isObject(doc) || doc.schema !== ANN_SCHEMA) return "it is not an annotation export (schema " + ANN_SCHEMA + ")";
    if (doc.study !== DATA.study) return "it belongs to another viewer (study " + String(doc.study).slice(0, 40) + ", this page is " + DATA.study + ")";
    if (doc.rater !== undefined && (typeof doc.rater !== "string" || doc.rater.length > LIMITS.short)) return "its rater id is not a short text";
    if (!isObject(doc.annotations)) return "it has no annotations object";
    const unknown = Object.keys(doc.annotations).filter((k) => !BY_ID.has(k));
    if (unknown.length) return "unknown item ids " + unknown.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 40))).join(", ");
    for (const [id, ann] of Object.entries(doc.annotations)) {
      const why = checkAnnotation(id, ann);
      if (why) return why;
    }
    return "";
  }
  function importJson(file) {
    if (file.size > LIMITS.file_bytes) { message("Import failed: " + file.name + " is larger than " + LIMITS.file_bytes + " bytes; an annotation export is far smaller.", "error"); return; }
    const reader = new FileReader();
    reader.onload = () => {
      let doc;
      try { doc = JSON.parse(reader.result); } catch (e) { message("Import failed: " + file.name + " is not JSON.", "error"); return; }
      const why = checkImport(doc);
      if (why) { message("Import failed: " + file.name + ": " + why + ". Nothing was imported; export the file again from the viewer.", "error"); return; }
      Object.assign(state.annotations, doc.annotations);
      if (!state.rater && doc.rater) { state.rater = doc.rater; document.getElementById("rater").value = doc.rater; }
      saveState();
      message("Imported " + Object.keys(doc.annotations).length + " annotation(s) from " + file.name + ".", "ok");
      if (current) select(current); else renderList();
    };
    reader.readAsText(file);
  }

  // ------------------------------------------------------------------ embedding
  // In the book the page lives in an iframe that its parent sizes to this content (so only
  // the book's page scrolls); the parent sends where its viewport cuts the frame, which keeps
  // the form in view as position: sticky would in a standalone page.
  if (window.parent !== window) {
    const app = document.getElementById("app");
    const post = () => window.parent.postMessage({ type: "uv-height", height: Math.ceil(app.getBoundingClientRect().height) }, "*");
    new ResizeObserver(post).observe(app);
    window.addEventListener("message", (e) => {
      if (e.source !== window.parent || !e.data || e.data.type !== "uv-viewport") return;
      document.documentElement.style.setProperty("--sticky-top", Math.max(0, e.data.top) + "px");
    });
    post();
  }

  // ------------------------------------------------------------------ start
  loadState();
  document.title = DATA.title;
  document.getElementById("page-title").textContent = DATA.title;
  document.getElementById("help-mode").textContent = BLIND
    ? "Blinded mode: items are shuffled and carry opaque ids. Every item shows the same number of " +
      "prototype dots and of most activating cells, on one shared UMAP; attribution is relative to " +
      "the prototypes' mean activation. Rate each item on its genes."
    : "Open mode: each item is named by model, type and index.";
  const rater = document.getElementById("rater");
  rater.value = state.rater;
  rater.addEventListener("input", () => { state.rater = rater.value.trim(); saveState(); });
  document.getElementById("prev-btn").addEventListener("click", () => step(-1));
  document.getElementById("next-btn").addEventListener("click", () => step(1));
  document.getElementById("export-btn").addEventListener("click", exportJson);
  document.getElementById("import-file").addEventListener("change", (e) => {
    if (e.target.files.length) importJson(e.target.files[0]);
    e.target.value = "";
  });
  document.getElementById("help-btn").addEventListener("click", (e) => {
    const h = document.getElementById("help");
    h.hidden = !h.hidden;
    e.target.setAttribute("aria-expanded", String(!h.hidden));
  });
  buildFilters();
  const first = ITEMS.find((it) => !state.annotations[it.id]) || ITEMS[0];
  if (first) select(first.id); else renderList();
  if (!storageOk) message("This browser blocks localStorage here: answers are kept only until the page closes; export often.", "error");
})();
