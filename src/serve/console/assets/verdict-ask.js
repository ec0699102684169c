// Follow-up questions on the verdict page: the answer streams into the
// conversation as it is generated (server-sent events read from fetch, as
// EventSource cannot POST), and becomes a normal turn on `done`.
"use strict";

(function () {
  const page = dfa.verdict;
  const ask = document.getElementById("ask");
  if (!page || !ask) return;
  const { el, timeEl, problem } = page;
  const conversation = document.getElementById("conversation");

  function turn(role, author, text, adapter) {
    const li = el("li", "turn " + (role === "assistant" ? "assistant" : "user"));
    li.dataset.role = role;
    const meta = el("div", "meta");
    meta.append(el("span", "author", author));
    if (role === "assistant") meta.append(" ", el("span", "adapter", adapter || "base model"));
    meta.append(" ", timeEl(new Date().toISOString()));
    li.append(meta, el("p", "text", text));
    conversation.append(li);
    return li;
  }

  // Splits an event stream into events as bytes arrive; calls `on(name, data)`.
  async function readEvents(body, on) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        let name = "message";
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith(":")) continue; // keep-alive comment
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = val;
          else if (field === "data") data.push(val);
        }
        if (data.length) on(name, data.join("\n"));
      }
      if (done) return;
    }
  }

  const question = document.getElementById("question");
  // Only with more than one face: which one the question is about (the
  // server's default is the primary face, the select's default too).
  const face = document.getElementById("ask-face");
  const button = document.getElementById("ask-submit");
  const status = document.getElementById("ask-status");
  let busy = false;

  function say(message) {
    dfa.text(status, message);
    status.hidden = !message;
  }

  ask.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = question.value.trim();
    if (busy) return;
    if (!text) {
      say("Write a question first.");
      return;
    }
    busy = true;
    button.disabled = true;
    say("");
    const asked = turn("user", page.viewer, text);
    if (face) asked.querySelector(".meta").append(" ", el("span", "about", "about face #" + face.value));
    const answer = turn("assistant", "DFA-GPT", "");
    answer.classList.add("streaming");
    answer.dataset.state = "streaming";
    const answerText = answer.querySelector(".text");
    let ended = false;
    // `stored`: what the server may have kept. A refusal stores nothing; a
    // stream that breaks may end after the answer was persisted.
    const fail = (message, stored = "Nothing was stored.") => {
      ended = true;
      asked.remove();
      answer.remove();
      say(message + " " + stored);
    };
    const broken = "It may have been stored: reload to see.";
    try {
      const response = await dfa.api(page.base + "/questions", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify(face ? { question: text, face: Number(face.value) } : { question: text }),
      });
      if (!response.ok) {
        fail((await problem(response)).message);
        return;
      }
      await readEvents(response.body, (name, data) => {
        if (ended) return;
        let payload;
        try {
          payload = JSON.parse(data);
        } catch (_) {
          return;
        }
        if (name === "token") {
          answerText.textContent += payload.text || "";
          answer.scrollIntoView({ block: "nearest" });
        } else if (name === "done") {
          ended = true;
          dfa.text(answerText, payload.answer);
          dfa.text(answer.querySelector(".adapter"), payload.adapter || "base model");
          answer.classList.remove("streaming");
          answer.dataset.state = "done";
          question.value = "";
        } else if (name === "error") {
          fail(payload.message || "The answer failed.");
        }
      });
      if (!ended) fail("The answer stream ended before the answer was complete.", broken);
    } catch (err) {
      if (!ended) fail("The answer could not be fetched (" + err.message + ").", broken);
    } finally {
      busy = false;
      button.disabled = false;
    }
  });

  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      ask.requestSubmit();
    }
  });
})();
