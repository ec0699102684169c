// dfa review console. Plain script, no dependencies, no inline handlers
// (the Content-Security-Policy forbids them). Untrusted text is only ever
// set as textContent, never as HTML.
"use strict";

const dfa = {
  // The session's CSRF token, sent with every request that changes something.
  csrf() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  },

  // fetch() on the API with the session cookie and the CSRF token.
  api(path, options = {}) {
    const headers = Object.assign({ "x-csrf-token": dfa.csrf() }, options.headers || {});
    return fetch(path, Object.assign({ credentials: "same-origin" }, options, { headers }));
  },

  // Sets an element's text (never its HTML).
  text(el, value) {
    el.textContent = value == null ? "" : String(value);
  },
};
