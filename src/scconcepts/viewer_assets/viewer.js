/* Unit viewer for expert interpretation (Claye et al. 2025, Sec 3.3, Fig 9), rendered by viewer.py.
 * Vanilla JavaScript, no dependencies, nothing loaded: the data are embedded in the page as
 * base64-encoded UTF-8 JSON. The same code serves the open and the blinded page, so it names no
 * kind of unit itself: every label it shows comes from the embedded data. */
"use strict";
(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const ANN_SCHEMA = "expert-annotations/1";
  const CHOICES = { cell_type: ["no", "yes"], tissue: ["no", "yes"], process: ["no", "unclear", "yes"] };
  const TEXTS = ["cell_type_which", "tissue_which", "process_explanation", "notes"];

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
  const UMAPS = {};
  for (const [m, u] of Object.entries(DATA.umaps)) {
    UMAPS[m] = { n: u.n, x: new Uint16Array(bytes(u.x).buffer), y: new Uint16Array(bytes(u.y).buffer) };
  }

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
  function bestPathway(it) { return it.pathways.length ? it.pathways[0].term : ""; }
  function message(text, kind) {
    const m = document.getElementById("msg");
    m.textContent = text;
    m.className = kind || "";
  }

  // ------------------------------------------------------------------ storage
  let state = { rater: "", annotations: {} };
  let storageOk = true;
  function loadState() {
    try {
      const raw = window.localStorage.getItem(STORE_KEY);
      if (raw) {
        const s = JSON.parse(raw);
        state = { rater: s.rater || "", annotations: s.annotations || {} };
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

  // ------------------------------------------------------------------ list and filters
  let current = null;
  const filters = {};
  function distinct(values) { return Array.from(new Set(values)).sort(); }
  function addFilter(name, title, values, show) {
    const sel = el("select", { id: "filter-" + name, onchange: renderList });
    sel.append(el("option", { value: "", text: "all" }));
    for (const [v, t] of values) sel.append(el("option", { value: v, text: t }));
    filters[name] = sel;
    if (show) document.getElementById("filters").append(el("label", {}, title + " ", sel));
  }
  function buildFilters() {
    addFilter("model", "Model", DATA.models.map((m) => [m, modelName(m)]), DATA.models.length > 0);
    if (!BLIND) addFilter("kind", "Unit type", distinct(ITEMS.map((i) => i.kind)).map((k) => [k, k]), true);
    addFilter("category", "Category (Sec 3.1)", distinct(ITEMS.map((i) => i.category)).map((c) => [c, c]), true);
    const pw = distinct(ITEMS.map(bestPathway).filter((p) => p)).map((p) => [p, p]);
    pw.push(["(none)", "(no pathway)"]);
    addFilter("pathway", "Best pathway", pw, true);
    addFilter("status", "Status", [["done", "annotated"], ["todo", "not annotated"]], true);
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
    const hay = [label(it), it.category, ...it.genes, ...it.pathways.map((p) => p.term),
      ...Object.values(it.metadata).flat().map((r) => r[0])];
    for (const g of it.genes) if (DATA.gene_info[g]) hay.push(DATA.gene_info[g][0]);
    return hay.join("\n").toLowerCase().includes(q);
  }
  function renderList() {
    const ul = document.getElementById("item-list");
    ul.replaceChildren();
    const shown = ITEMS.filter(matches);
    for (const it of shown) {
      const done = state.annotations[it.id];
      const btn = el("button", { type: "button", class: "item" + (current === it.id ? " active" : ""),
                                 "data-id": it.id, onclick: () => select(it.id) },
        el("span", { class: done ? "done" : "", text: (done ? "\u2713 " : "") + label(it) }),
        el("span", { class: "sub", text: modelName(it.model) + " \u00b7 " + it.category +
                     (bestPathway(it) ? " \u00b7 " + bestPathway(it) : "") }));
      ul.append(el("li", {}, btn));
    }
    document.getElementById("count").textContent = shown.length + " of " + ITEMS.length + " items";
    const n = ITEMS.filter((i) => state.annotations[i.id]).length;
    document.getElementById("progress").textContent = n + " of " + ITEMS.length + " annotated";
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
      el("br"), "mean attribution: " + fmt(it.attribution[i]),
      el("br"), "per prototype: " + pp.join(", ")];
  }

  // ------------------------------------------------------------------ panels
  function attributionChart(it) {
    const rows = it.genes.length, rh = 18, left = 92, right = 16, top = 8, width = 560;
    const height = top + rows * rh + 28;
    const vals = it.attribution.concat(...it.per_prototype).filter((v) => v !== null);
    const lo = Math.min(0, ...vals), hi = Math.max(0, ...vals);
    const span = (hi - lo) || 1;
    const X = (v) => left + ((v - lo) / span) * (width - left - right);
    const svg = sv("svg", { viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
                            "aria-label": "attribution of the top genes" });
    svg.append(sv("line", { x1: X(0), x2: X(0), y1: top, y2: top + rows * rh, stroke: "#999" }));
    it.genes.forEach((g, i) => {
      const y = top + i * rh;
      const grp = sv("g", { class: "gene-row", "data-gene": g });
      const v = it.attribution[i] || 0;
      grp.append(sv("rect", { x: Math.min(X(0), X(v)), y: y + 3, width: Math.abs(X(v) - X(0)),
                              height: rh - 6, fill: "#4C72B0" }));
      for (const p of it.per_prototype[i]) {
        if (p === null) continue;
        grp.append(sv("circle", { cx: X(p), cy: y + rh / 2, r: 2.3, fill: "#000", "fill-opacity": 0.45 }));
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
      const tr = el("tr", {}, el("td", { text: g }), el("td", { class: "num", text: fmt(it.attribution[i]) }));
      for (const p of it.per_prototype[i]) tr.append(el("td", { class: "num", text: fmt(p, 2) }));
      table.append(tr);
    });
    return el("section", { class: "panel wide", id: "panel-attribution" },
      el("h3", { text: "Gene attribution (top " + rows + ")" }), svg,
      el("div", { class: "caption", text: "Bars: mean over prototype cells and counterfactuals " +
        "(Eq 3); dots: each prototype cell. Hover a gene for its NCBI description." }),
      el("details", {}, el("summary", { text: "Per-prototype values" }), table));
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
    svg.append(sv("text", { x: w, y: h + 13, "text-anchor": "end" },
      it.hist.max === null ? "max" : fmt(it.hist.max)));
    svg.append(sv("text", { x: 2, y: 10 }, String(max)));
    svg.append(sv("text", { x: (w + pad) / 2, y: h + 26, "text-anchor": "middle" },
      it.hist.max === null ? "activation (share of its maximum)" : "activation"));
    return el("section", { class: "panel", id: "panel-histogram" }, el("h3", { text: "Activation histogram" }), svg,
      el("div", { class: "caption", text: it.n_cells + " of " + it.n_total + " cells activate (value > 0); " +
        "the histogram shows those cells." }));
  }

  function umapPanel(it) {
    const size = 320, canvas = el("canvas", { width: size, height: size, id: "umap-canvas",
                                              "aria-label": "UMAP with activating cells" });
    const u = UMAPS[it.model], q = bytes(it.cells);
    const ctx = canvas.getContext("2d");
    const px = (i) => 4 + (u.x[i] / 65535) * (size - 8), py = (i) => size - 4 - (u.y[i] / 65535) * (size - 8);
    ctx.fillStyle = "#d5d5d5";
    for (let i = 0; i < u.n; i++) ctx.fillRect(px(i) - 1, py(i) - 1, 2, 2);
    const on = [];
    for (let i = 0; i < u.n; i++) if (q[i] > 0) on.push(i);
    on.sort((a, b) => q[a] - q[b]);
    for (const i of on) {
      const t = (q[i] - 1) / 254;  // light orange to dark red
      ctx.fillStyle = "rgb(" + Math.round(253 - 120 * t) + "," + Math.round(190 - 180 * t) + "," + Math.round(90 - 60 * t) + ")";
      ctx.fillRect(px(i) - 1.5, py(i) - 1.5, 3, 3);
    }
    return el("section", { class: "panel", id: "panel-umap" }, el("h3", { text: "Activating cells on the UMAP" }), canvas,
      el("div", { class: "caption", text: on.length + " of " + u.n + " cells drawn activate (orange to dark red: " +
        "share of the maximum activation); grey: not activating." }));
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
    const form = el("form", { id: "ann-form", novalidate: true },
      el("fieldset", {}, el("legend", { text: "Cell type specificity" }),
        el("p", { text: "Do these genes suggest a specific cell type?" }),
        radio("cell_type", "no", "No"), radio("cell_type", "yes", "Yes"),
        el("input", { type: "text", name: "cell_type_which", placeholder: "Which cell type?" })),
      el("fieldset", {}, el("legend", { text: "Tissue specificity" }),
        el("p", { text: "Do these genes suggest a specific tissue?" }),
        radio("tissue", "no", "No"), radio("tissue", "yes", "Yes"),
        el("input", { type: "text", name: "tissue_which", placeholder: "Which tissue? e.g., liver, brain, immune system..." })),
      el("fieldset", {}, el("legend", { text: "Biological process specificity" }),
        el("p", { text: "Do these genes suggest a specific biological process?" }),
        radio("process", "no", "No"), radio("process", "unclear", "Signal but unclear"), radio("process", "yes", "Yes"),
        el("textarea", { name: "process_explanation", placeholder: "Please explain the biological process or signal" })),
      el("label", {}, "Free text", el("textarea", { name: "notes", placeholder: "Anything else" })),
      el("div", { id: "form-error", role: "alert" }),
      el("button", { type: "submit", id: "save-btn", text: "Save annotation" }),
      el("span", { id: "save-status" }));
    const prev = state.annotations[it.id];
    if (prev) {
      for (const k of Object.keys(CHOICES)) {
        const r = form.querySelector("input[name=" + k + "][value=" + prev[k] + "]");
        if (r) r.checked = true;
      }
      for (const k of TEXTS) form.elements[k].value = prev[k] || "";
      form.querySelector("#save-status").textContent = "Already annotated on " + prev.saved_at;
    }
    form.addEventListener("submit", (e) => { e.preventDefault(); saveForm(it, form); });
    return el("section", { class: "panel wide", id: "panel-form" }, el("h3", { text: "Annotation" }), form);
  }
  function saveForm(it, form) {
    const ann = {};
    const err = form.querySelector("#form-error");
    for (const k of Object.keys(CHOICES)) {
      const r = form.querySelector("input[name=" + k + "]:checked");
      if (!r) { err.textContent = "Please answer every question (" + k.replace("_", " ") + ")."; return; }
      ann[k] = r.value;
    }
    for (const k of TEXTS) ann[k] = form.elements[k].value.trim();
    if (ann.cell_type === "yes" && !ann.cell_type_which) { err.textContent = "Which cell type?"; return; }
    if (ann.tissue === "yes" && !ann.tissue_which) { err.textContent = "Which tissue?"; return; }
    if (ann.process === "yes" && !ann.process_explanation) { err.textContent = "Please explain the biological process."; return; }
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
    const main = document.getElementById("detail");
    const idx = ITEMS.indexOf(it);
    const nav = el("div", { class: "nav-buttons" },
      el("button", { type: "button", id: "prev-btn", onclick: () => select(ITEMS[(idx + ITEMS.length - 1) % ITEMS.length].id), text: "\u2190 previous" }), " ",
      el("button", { type: "button", id: "next-btn", onclick: () => select(ITEMS[(idx + 1) % ITEMS.length].id), text: "next \u2192" }),
      " " + (idx + 1) + " of " + ITEMS.length);
    main.replaceChildren(
      el("h2", { id: "item-title", text: label(it) }),
      el("div", { class: "meta", text: "Model: " + modelName(it.model) + " \u00b7 category: " + it.category +
        " \u00b7 " + it.n_cells + " activating cells" }),
      nav,
      el("div", { class: "panels" }, attributionChart(it), metadataPanel(it), histogramPanel(it), umapPanel(it),
        pathwayPanel(it), annotationForm(it)));
    renderList();
  }

  // ------------------------------------------------------------------ export / import
  function exportJson() {
    state.rater = document.getElementById("rater").value.trim();
    saveState();
    const doc = { schema: ANN_SCHEMA, study: DATA.study, mode: DATA.mode, rater: state.rater,
                  exported_at: new Date().toISOString(), n_items: ITEMS.length, annotations: state.annotations };
    const a = el("a", { href: URL.createObjectURL(new Blob([JSON.stringify(doc, null, 1)], { type: "application/json" })),
                        download: "annotations_" + DATA.study + "_" + (state.rater || "anonymous").replace(/[^A-Za-z0-9_-]+/g, "_") + ".json" });
    document.body.append(a);
    a.click();
    a.remove();
    message("Exported " + Object.keys(state.annotations).length + " annotation(s).", "ok");
  }
  function importJson(file) {
    const reader = new FileReader();
    reader.onload = () => {
      let doc;
      try { doc = JSON.parse(reader.result); } catch (e) { message("Import failed: " + file.name + " is not JSON.", "error"); return; }
      if (!doc || doc.schema !== ANN_SCHEMA) { message("Import failed: " + file.name + " is not an annotation export (schema " + ANN_SCHEMA + ").", "error"); return; }
      if (doc.study !== DATA.study) { message("Import failed: " + file.name + " belongs to another viewer (study " + doc.study + ", this page is " + DATA.study + ").", "error"); return; }
      const unknown = Object.keys(doc.annotations || {}).filter((k) => !BY_ID.has(k));
      if (unknown.length) { message("Import failed: unknown item ids " + unknown.slice(0, 5).join(", ") + ".", "error"); return; }
      Object.assign(state.annotations, doc.annotations);
      if (!state.rater && doc.rater) { state.rater = doc.rater; document.getElementById("rater").value = doc.rater; }
      saveState();
      message("Imported " + Object.keys(doc.annotations || {}).length + " annotation(s) from " + file.name + ".", "ok");
      if (current) select(current); else renderList();
    };
    reader.readAsText(file);
  }

  // ------------------------------------------------------------------ start
  loadState();
  document.title = DATA.title;
  document.getElementById("page-title").textContent = DATA.title;
  document.getElementById("help-mode").textContent = BLIND
    ? "Blinded mode: items are shuffled and carry opaque ids; values are shown relative to their maximum. Rate each item on its own merits."
    : "Open mode: each item is named by model, type and index.";
  const rater = document.getElementById("rater");
  rater.value = state.rater;
  rater.addEventListener("change", () => { state.rater = rater.value.trim(); saveState(); });
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
  renderList();
  if (!storageOk) message("This browser blocks localStorage here: answers are kept only until the page closes; export often.", "error");
})();
