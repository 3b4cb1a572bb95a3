"""The viewer pages: one self-contained HTML file per payload (:func:`render_html`), both pages
written with the blinding key (:func:`export_viewer`), and both embedded in a notebook output
(:func:`embed_html`). See :mod:`scconcepts.viewer`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ..utils import atomic_write
from .blind import blind_payload
from .payload import VIEWER_SCHEMA

__all__ = ["ViewerExport", "render_html", "content_security_policy", "export_viewer",
           "embed_html"]

#: Folder of the page's HTML, CSS and JavaScript inside the ``scconcepts`` package.
_ASSETS = "viewer_assets"


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return resources.files("scconcepts").joinpath(_ASSETS, name).read_text(encoding="utf-8")


def render_html(payload: dict[str, Any]) -> str:
    """The self-contained viewer page for ``payload`` (open or blinded), as a string.

    The page inlines its CSS and JavaScript (``scconcepts/viewer_assets``) and the payload as
    base64-encoded UTF-8 JSON; it loads nothing (no ``src``/``href`` to any file or host).

    Raises
    ------
    ValueError
        If the payload has the wrong schema.
    """
    if payload.get("schema") != VIEWER_SCHEMA:
        raise ValueError(f"payload schema {payload.get('schema')!r} is not {VIEWER_SCHEMA!r}; "
                         "build it with build_payload() / blind_payload().")
    blob = base64.b64encode(json.dumps(payload, allow_nan=False,
                                       separators=(",", ":")).encode("utf-8")).decode("ascii")
    page, js = _asset("viewer.html"), _asset("viewer.js")
    for name, value in (("{{CSP}}", content_security_policy(js)),
                        ("{{TITLE}}", html.escape(payload["title"])),
                        ("{{CSS}}", _asset("viewer.css")),
                        ("{{JS}}", js),
                        ("{{PAYLOAD}}", blob)):
        page = page.replace(name, value)
    return page


def content_security_policy(js: str) -> str:
    """The page's Content-Security-Policy: only the viewer's own script runs.

    ``script-src`` allows exactly one script, by the SHA-256 of its text (the ``<script>``
    element holds ``"\\n" + js + "\\n"``), so an inline event handler (``onerror=``), a
    ``<script>`` or a ``javascript:`` URL that text from a data file or an imported rating might
    smuggle into the document never runs; nothing is fetched (``default-src 'none'``), images
    only from ``data:``/``blob:``, and no form is submitted anywhere. Styles stay inline (the
    page sets bar widths and colours as ``style`` attributes).
    """
    digest = base64.b64encode(hashlib.sha256(("\n" + js + "\n").encode("utf-8")).digest())
    return ("default-src 'none'; script-src 'sha256-" + digest.decode("ascii") + "'; "
            "style-src 'unsafe-inline'; img-src data: blob:; base-uri 'none'; "
            "form-action 'none'; object-src 'none'")


@dataclass
class ViewerExport:
    """What :func:`export_viewer` wrote and returns.

    Attributes
    ----------
    open_html, blinded_html
        The two pages (strings).
    open_path, blinded_path, key_path
        Files written (``None`` if no folder was given). The key file must not be handed to
        raters.
    key
        Blinding key (see :func:`blind_payload`).
    items
        One row per item: ``id`` (open id), ``blinded_id``, ``model``, ``kind``, ``unit``,
        ``category``, ``best_pathway``, ``NES``, ``pval``, ``gsea_annotation``, ``top10``.
    studies
        Study id → ``{item id: {"id", "model", "kind", "unit"}}`` for both pages: what
        :func:`~scconcepts.viewer.load_annotations` needs to map exported annotations back to
        units.
    """

    open_html: str
    blinded_html: str
    key: dict
    items: pd.DataFrame
    studies: dict[str, dict[str, dict]] = field(default_factory=dict)
    open_path: Path | None = None
    blinded_path: Path | None = None
    key_path: Path | None = None


def export_viewer(payload: dict[str, Any], out_dir: str | os.PathLike | None = None,
                  seed: int = 0) -> ViewerExport:
    """Render the open and the blinded viewer and write them (atomically) to ``out_dir``.

    Files: ``viewer_open.html``, ``viewer_blinded.html`` (hand this one to raters) and
    ``blinded_key_<study>.json`` (keep it: it maps opaque ids back to units).

    Parameters
    ----------
    payload
        From :func:`~scconcepts.viewer.build_payload`.
    out_dir
        Folder for the files; ``None`` writes nothing.
    seed
        Seed of the blinded shuffle.
    """
    blinded, key = blind_payload(payload, seed)
    open_html, blinded_html = render_html(payload), render_html(blinded)
    back = {v["id"]: k for k, v in key["items"].items()}
    rows = []
    for it in payload["items"]:
        best = it["pathways"][0] if it["pathways"] else {}
        rows.append({"id": it["id"], "blinded_id": back[it["id"]], "model": it["model"],
                     "kind": it["kind"], "unit": it["unit"], "category": it["category"],
                     "best_pathway": best.get("term"), "NES": best.get("nes"),
                     "pval": best.get("p"), "gsea_annotation": it["gsea_annotation"],
                     "top10": ", ".join(it["genes"][:10])})
    studies = {
        payload["study"]: {it["id"]: {"id": it["id"], "model": it["model"], "kind": it["kind"],
                                      "unit": it["unit"]} for it in payload["items"]},
        key["study"]: key["items"],
    }
    out = ViewerExport(open_html, blinded_html, key, pd.DataFrame(rows), studies)
    if out_dir is not None:
        d = Path(out_dir)
        out.open_path = atomic_write(d / "viewer_open.html",
                                     lambda t: Path(t).write_text(open_html, encoding="utf-8"))
        out.blinded_path = atomic_write(d / "viewer_blinded.html",
                                        lambda t: Path(t).write_text(blinded_html,
                                                                     encoding="utf-8"))
        out.key_path = atomic_write(d / f"blinded_key_{key['study']}.json",
                                    lambda t: Path(t).write_text(json.dumps(key, indent=1)))
    return out


#: The parent page's script of :func:`embed_html`: it sizes each viewer frame to its content
#: (the viewer posts its height), so that only the book's page scrolls, and tells the visible
#: frame where the window's top (below a sticky theme header) cuts it, which keeps the
#: viewer's form in view. Plain DOM events: no library does this for srcdoc frames.
_EMBED_SCRIPT = """
(function () {
  const frames = () => Array.from(document.querySelectorAll("#uv-embed iframe.uv-frame"));
  function headerBottom() {  // a sticky or fixed header of the book's theme covers the top
    let b = 0;
    for (const h of document.querySelectorAll("header, .bd-header, .bd-header-article")) {
      const pos = getComputedStyle(h).position;
      if (pos === "sticky" || pos === "fixed") b = Math.max(b, h.getBoundingClientRect().bottom);
    }
    return Math.max(0, b);
  }
  function relay() {
    const off = headerBottom();
    for (const f of frames()) {
      if (f.style.display === "none" || !f.contentWindow) continue;
      const r = f.getBoundingClientRect();
      f.contentWindow.postMessage({type: "uv-viewport", top: off - r.top}, "*");
    }
  }
  window.addEventListener("message", (e) => {
    if (!e.data || e.data.type !== "uv-height") return;
    const f = frames().find((fr) => fr.contentWindow === e.source);
    if (f) { f.style.height = Math.ceil(e.data.height) + "px"; relay(); }
  });
  window.addEventListener("scroll", relay, {passive: true});
  window.addEventListener("resize", relay);
  window.uvShow = function (name) {
    for (const n of ["open", "blinded"]) {
      document.getElementById("uv-frame-" + n).style.display = (n === name) ? "" : "none";
      document.getElementById("uv-tab-" + n).style.fontWeight = (n === name) ? "bold" : "normal";
    }
    relay();
  };
  window.uvSave = function (name) {
    const doc = document.getElementById("uv-frame-" + name).getAttribute("srcdoc");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([doc], {type: "text/html"}));
    a.download = "viewer_" + name + ".html";
    document.body.appendChild(a); a.click(); a.remove();
  };
  window.uvShow("open");
})();
"""


def embed_html(export: ViewerExport, height: int = 900) -> str:
    """HTML for a notebook output: both viewers in ``srcdoc`` iframes behind two tabs.

    The chapter page then carries the viewers itself, so the built book serves them from
    ``file://`` without extra files. Each iframe is its own document: the blinded one contains
    only the blinded page. Each frame grows to its content (the viewer posts its height), so
    the chapter has one scroll, not a frame scrolling inside the page; ``height`` (px) is only
    the frame's height until the viewer has reported its own. A button saves the blinded page
    as a standalone file for raters.
    """
    def frame(name: str, doc: str, hidden: bool) -> str:
        return (f'<iframe class="uv-frame" id="uv-frame-{name}" title="viewer ({name})" '
                f'scrolling="no" style="width:100%;height:{int(height)}px;border:1px solid #ccc;'
                f'{"display:none;" if hidden else ""}" srcdoc="{html.escape(doc, quote=True)}">'
                "</iframe>")

    return f"""<div class="uv-embed" id="uv-embed">
<div role="tablist" style="margin:0.5em 0">
<button type="button" id="uv-tab-open" onclick="uvShow('open')">Open viewer</button>
<button type="button" id="uv-tab-blinded" onclick="uvShow('blinded')">Blinded rating mode</button>
<button type="button" id="uv-save-blinded" onclick="uvSave('blinded')">Save the blinded viewer as a file (for raters)</button>
<button type="button" id="uv-save-open" onclick="uvSave('open')">Save the open viewer as a file</button>
</div>
{frame("open", export.open_html, False)}
{frame("blinded", export.blinded_html, True)}
<script>{_EMBED_SCRIPT}</script>
</div>"""
