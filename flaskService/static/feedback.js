// "Wrong? Tap the right digit": after each prediction (app.js dispatches a "prediction" event on
// #app), ten buttons send the image that was read, with the digit it really shows, to POST /feedback,
// together with the prediction's X-Request-ID so the operator can tie the two together.
"use strict";

(() => {
  const app = document.getElementById("app");
  const panel = document.getElementById("feedback");
  if (!panel) return; // the server collects no feedback (FEEDBACK_DB=off)
  const buttons = Array.from(panel.querySelectorAll("button[data-digit]"));
  const statusLine = document.getElementById("feedback-status");
  const digitOut = document.getElementById("digit");
  let current = null; // the prediction on screen: {image, digit, requestId}

  function say(text, isError = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", isError);
  }

  function enable(enabled) {
    for (const button of buttons) button.disabled = !enabled;
  }

  app.addEventListener("prediction", (event) => {
    const {answer, image, requestId} = event.detail;
    // A drawing is sent as a PNG Blob, an upload as a form whose "image" is the file.
    current = {image: image instanceof FormData ? image.get("image") : image, digit: answer.digit, requestId};
    for (const button of buttons) button.setAttribute("aria-pressed", "false");
    enable(true);
    say("");
    panel.hidden = false;
  });

  // When the answer leaves the screen (cleared, undone, failed), its correction goes with it. An
  // answer of "not a digit" shows no digit but stays: a real digit turned away is worth correcting.
  const result = document.getElementById("result");
  new MutationObserver(() => {
    if (!digitOut.textContent && !result.classList.contains("not-digit")) {
      current = null;
      panel.hidden = true;
    }
  }).observe(digitOut, {childList: true, characterData: true, subtree: true});

  async function send(button) {
    const sent = current;
    if (!sent) return;
    const label = button.dataset.digit;
    const form = new FormData();
    form.append("image", sent.image, sent.image.name || "drawing.png");
    form.append("label", label);
    form.append("predicted", String(sent.digit));
    if (sent.requestId) form.append("request_id", sent.requestId);
    form.append("source", "page");
    enable(false);
    say("Sending…");
    try {
      const response = await fetch(panel.dataset.feedbackUrl, {method: "POST", body: form});
      const answer = await response.json().catch(() => null);
      if (sent !== current) return; // another digit is on screen now
      if (response.ok) {
        button.setAttribute("aria-pressed", "true");
        say(`Thank you: saved as ${label}, to teach the next model.`);
      } else {
        enable(true);
        say(answer && answer.error ? answer.error : `Could not save it (HTTP ${response.status}).`, true);
      }
    } catch (error) {
      if (sent !== current) return;
      enable(true);
      say("Could not reach the server. Try again in a moment.", true);
    }
  }

  for (const button of buttons) button.addEventListener("click", () => send(button));
})();
