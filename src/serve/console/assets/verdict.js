// The verdict page's shared part: its data (from the page's data-*
// attributes), small DOM helpers, and the keyboard shortcuts.
// verdict-ask.js (follow-ups) and verdict-correct.js (corrections) build on
// `dfa.verdict`. All are deferred, so they run in order after console.js.
// Untrusted text (answers, names, notes) only ever goes in as textContent.
"use strict";

dfa.verdict = (function () {
  const root = document.getElementById("verdict");
  if (!root) return null;
  const page = {
    id: root.dataset.id,
    viewer: root.dataset.viewer,
    base: "/api/verdicts/" + encodeURIComponent(root.dataset.id),
    // Marks the verdict real or fake at once (the r and f shortcuts); set
    // by verdict-correct.js when this viewer may correct.
    mark: null,
    el,
    timeEl,
    problem,
  };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) dfa.text(e, text);
    return e;
  }

  function ago(iso) {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
    if (!isFinite(s)) return String(iso);
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }

  function timeEl(iso) {
    const t = el("time", "", ago(iso));
    t.dateTime = iso;
    t.title = iso;
    return t;
  }

  // An error answer's sentence: the body's message, or the status.
  async function problem(response) {
    let message = "";
    let field = null;
    try {
      const body = await response.json();
      message = body.message || "";
      field = body.field || null;
    } catch (_) { /* not JSON */ }
    if (response.status === 429) {
      const after = response.headers.get("retry-after");
      message = "Too many questions" + (after ? "; retry in " + after + " s" : "; retry shortly") + ".";
    } else if (response.status === 403 && !message) {
      message = "Your role may not do this.";
    }
    return { status: response.status, field, message: message || "HTTP " + response.status };
  }

  // ---- Keyboard shortcuts: n next, r real, f fake ----

  // Whether a key goes into a field being typed in (a radio button or a
  // checkbox takes no text: shortcuts still work there).
  function typing(t) {
    if (!t || !t.closest) return false;
    if (t.closest("textarea, select, [contenteditable]")) return true;
    return t.tagName === "INPUT" && !["radio", "checkbox", "button", "submit", "reset"].includes(t.type);
  }

  document.addEventListener("keydown", (e) => {
    // A held key repeats: one correction per press.
    if (e.repeat || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.shiftKey || e.isComposing) return;
    if (typing(e.target)) return;
    if (e.key === "n") {
      e.preventDefault();
      document.getElementById("next").click();
    } else if ((e.key === "r" || e.key === "f") && page.mark) {
      e.preventDefault();
      page.mark(e.key === "r" ? "real" : "fake");
    }
  });

  return page;
})();
