// Corrections on the verdict page: the form and the r/f shortcuts submit
// through the API (202: published), then the correction shows as pending
// until a worker has stored it (polling the verdict), and the list of
// stored corrections is redrawn.
"use strict";

(function () {
  const page = dfa.verdict;
  const form = document.getElementById("correction");
  if (!page || !form) return;
  const { el, timeEl, problem } = page;
  const corrections = document.getElementById("corrections");
  const base = page.base;

  // How long a stored correction is waited for, polling once a second.
  const POLL_MS = 1000;
  const POLL_FOR_MS = 120000;

  // What people call a forgery type: the form's option for it.
  function typeName(t) {
    const option = document.querySelector('#forgery-type option[value="' + CSS.escape(t) + '"]');
    return option ? option.textContent : t;
  }

  function correctionItem(c) {
    const li = el("li", "correction");
    li.append(el("span", "reviewer", c.reviewer), " ");
    li.append(el("span", "label " + (c.label === "fake" ? "fake" : "real"), c.label), " ");
    if (c.forgery_type) li.append(el("span", "type", typeName(c.forgery_type)), " ");
    li.append(timeEl(c.created_at));
    if (c.note) li.append(el("p", "note", c.note));
    if (Array.isArray(c.artifacts) && c.artifacts.length) {
      const ul = el("ul", "regions");
      for (const a of c.artifacts) {
        const item = el("li");
        item.append(el("span", "region", a.region), " ", String(a.text == null ? "" : a.text));
        ul.append(item);
      }
      li.append(ul);
    }
    return li;
  }

  function showCorrections(list) {
    corrections.replaceChildren(...list.map(correctionItem));
    if (!list.length) corrections.append(el("li", "empty muted", "None yet."));
  }

  const status = document.getElementById("correction-status");
  const submit = document.getElementById("correction-submit");
  const type = document.getElementById("forgery-type");
  const rows = document.getElementById("artifact-rows");
  const rowTemplate = document.getElementById("artifact-row");
  // A later submission supersedes the wait for an earlier one.
  let generation = 0;

  function state(s, message) {
    if (s) status.dataset.state = s;
    else delete status.dataset.state;
    dfa.text(status, message);
    status.hidden = !message;
  }

  function clearErrors() {
    for (const p of form.querySelectorAll(".field-error")) {
      dfa.text(p, "");
      p.hidden = true;
    }
    for (const f of form.querySelectorAll(".invalid")) f.classList.remove("invalid");
  }

  function fieldError(p, message) {
    dfa.text(p, message);
    p.hidden = false;
    if (p.parentElement) p.parentElement.classList.add("invalid");
  }

  // Only a fake has a forgery type and artifacts.
  function syncLabel() {
    const fake = form.elements.label.value !== "real";
    for (const f of form.querySelectorAll(".fake-only select, .fake-only input, .fake-only textarea, .fake-only button")) {
      f.disabled = !fake;
    }
    form.querySelector(".fake-only").classList.toggle("off", !fake);
  }

  function addRow() {
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    rows.insertBefore(row, document.getElementById("add-artifact"));
    row.querySelector(".row-region").focus();
  }

  form.addEventListener("change", (e) => {
    if (e.target.name === "label") syncLabel();
  });
  form.addEventListener("click", (e) => {
    if (e.target.id === "add-artifact") addRow();
    else if (e.target.classList.contains("remove-row")) e.target.closest(".artifact-row").remove();
  });
  syncLabel();

  // The body for the form's fields; `rowsSent` gets the row of each
  // artifact sent, so a 400 naming `artifacts[i]` lands next to it.
  function fromForm(rowsSent) {
    const label = form.elements.label.value;
    if (!label) {
      fieldError(form.querySelector('[data-error-for="label"]'), "Choose real or fake.");
      return null;
    }
    const body = { label };
    if (label === "fake") {
      if (type.value) body.forgery_type = type.value;
      const artifacts = [];
      for (const row of rows.querySelectorAll(".artifact-row")) {
        const text = row.querySelector(".row-text").value.trim();
        if (!text) continue;
        const region = row.querySelector(".row-region").value.trim();
        if (!region) {
          fieldError(row.querySelector(".field-error"), "Name the region this is about.");
          return null;
        }
        artifacts.push({ region, text });
        rowsSent.push(row);
      }
      if (artifacts.length) body.artifacts = artifacts;
    }
    const note = form.elements.note.value.trim();
    if (note) body.note = note;
    return body;
  }

  async function send(body, rowsSent) {
    // One correction on its way at a time (a key held down, a double click).
    if (submit.disabled) return;
    const mine = ++generation;
    clearErrors();
    submit.disabled = true;
    state(null, "Sending…");
    let response;
    try {
      response = await dfa.api(base + "/corrections", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (err) {
      submit.disabled = false;
      state("error", "Not sent: " + err.message);
      return;
    }
    submit.disabled = false;
    if (response.status !== 202) {
      const p = await problem(response);
      const m = p.field && /^artifacts\[(\d+)\]/.exec(p.field);
      const target = m && rowsSent[Number(m[1])]
        ? rowsSent[Number(m[1])].querySelector(".field-error")
        : p.field && form.querySelector('[data-error-for="' + CSS.escape(p.field.split(/[.[]/)[0]) + '"]');
      if (target) fieldError(target, p.message);
      state("error", "Not sent: " + p.message);
      return;
    }
    const published = await response.json();
    state("pending", "Pending: waiting for a worker to store it");
    await waitStored(published, mine);
  }

  // Polls the verdict until it lists this correction (same reviewer, same
  // time), then shows the stored list.
  async function waitStored(published, mine) {
    const at = Date.parse(published.created_at);
    const until = Date.now() + POLL_FOR_MS;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (mine !== generation) return;
      let view;
      try {
        const r = await dfa.api(base, { headers: { accept: "application/json" } });
        if (r.status === 401 || r.status === 403) {
          state("error", "Published, but this session has ended: sign in again to see it stored.");
          return;
        }
        if (!r.ok) continue;
        view = await r.json();
      } catch (_) {
        continue;
      }
      if (mine !== generation) return;
      const list = Array.isArray(view.corrections) ? view.corrections : [];
      if (list.some((c) => c.reviewer === published.reviewer && Date.parse(c.created_at) === at)) {
        showCorrections(list);
        state("stored", "Stored: " + published.label + (published.forgery_type ? ", " + typeName(published.forgery_type) : ""));
        return;
      }
    }
    if (mine === generation) {
      state("pending", "Still pending after " + POLL_FOR_MS / 60000 + " min: no worker has stored it yet. It will be listed once one does; reload later.");
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    clearErrors();
    const rowsSent = [];
    const body = fromForm(rowsSent);
    if (body) send(body, rowsSent);
  });

  // Shortcuts: the form as it stands with this label, so a note or
  // artifacts already typed go with it (fake: with the selected type).
  page.mark = (label) => {
    form.elements.label.value = label;
    syncLabel();
    clearErrors();
    const rowsSent = [];
    const body = fromForm(rowsSent);
    if (body) send(body, rowsSent);
  };
})();
