// The page's "Number" mode: a wide pad -> its strokes as a PNG -> POST /read?debug=1 -> the text,
// each digit's box drawn on the pad with its confidence, and per digit the columns of the line the model read it from.
// Beside app.js (the "Digit" mode): the two share the page and pad.js (pointer handling, painting).
"use strict";

(() => {
  const ASPECT = 3; // the pad is three times as wide as it is tall
  const PEN = 0.06; // pen width, as a share of the pad's height (a digit is about half of it)
  const PAUSE_MS = 900; // numbers take several strokes and lifts: wait longer than for one digit
  const BOX = "#e11d48";

  const app = document.getElementById("app");
  const section = document.getElementById("number");
  const pad = document.getElementById("number-pad");
  const context = pad.getContext("2d");
  const statusLine = document.getElementById("number-status");
  const textOut = document.getElementById("number-text");
  const confidenceOut = document.getElementById("number-confidence");
  const digitList = document.getElementById("number-digits");
  const title = document.querySelector("header h1");
  const hint = document.getElementById("hint");
  const digitTitle = title.textContent;
  const digitHint = hint.textContent;

  const strokes = []; // lists of [x, y] points in CSS pixels of the pad
  let boxes = []; // the last reading's digits, to draw over the strokes
  let timer = 0;
  let inFlight = null;

  // --- Mode ----------------------------------------------------------------------------------------

  function setMode(mode) {
    app.dataset.mode = mode;
    section.hidden = mode !== "number";
    document.getElementById("mode-digit").setAttribute("aria-pressed", String(mode === "digit"));
    document.getElementById("mode-number").setAttribute("aria-pressed", String(mode === "number"));
    title.textContent = mode === "number" ? "Draw a number" : digitTitle;
    hint.textContent = mode === "number" ? "Write a number, up to 12 digits, left to right, with a mouse, finger or pen. It is read when you pause." : digitHint;
    if (mode === "number") fit();
  }
  document.getElementById("mode-digit").addEventListener("click", () => setMode("digit"));
  document.getElementById("mode-number").addEventListener("click", () => setMode("number"));

  // --- Drawing -------------------------------------------------------------------------------------

  function size() {
    const box = pad.getBoundingClientRect();
    return {width: box.width, height: box.width / ASPECT};
  }

  function drawStrokes(target, scale, colour) {
    Pad.paint(target, strokes, ([x, y]) => [x * scale, y * scale], PEN * size().height * scale, colour);
  }

  function redraw() {
    const scale = pad.width / size().width;
    context.clearRect(0, 0, pad.width, pad.height);
    drawStrokes(context, scale, getComputedStyle(pad).color);
    context.lineWidth = Math.max(1, 2 * devicePixelRatio);
    context.font = `${Math.round(14 * devicePixelRatio)}px system-ui, sans-serif`;
    for (const {digit, confidence, box: [x, y, w, h]} of boxes) {
      context.strokeStyle = context.fillStyle = BOX;
      context.strokeRect(x * scale, y * scale, w * scale, h * scale);
      context.fillText(`${digit} ${Math.round(confidence * 100)}%`, x * scale, Math.max(12 * devicePixelRatio, (y - 4) * scale));
    }
  }

  function fit() {
    const {width, height} = size();
    const w = Math.max(1, Math.round(width * devicePixelRatio));
    if (pad.width !== w) {
      pad.width = w;
      pad.height = Math.max(1, Math.round(height * devicePixelRatio));
      redraw();
    }
  }

  function pointOf(event) {
    const box = pad.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }

  Pad.track(pad, pointOf, {
    onStart(point) {
      clearTimeout(timer);
      cancel();
      boxes = [];
      section.classList.add("stale");
      strokes.push([point]);
      redraw();
    },
    onMove(points) {
      strokes[strokes.length - 1].push(...points);
      redraw();
    },
    onEnd() {
      clearTimeout(timer);
      timer = setTimeout(read, PAUSE_MS);
    },
  });

  // --- Reading -------------------------------------------------------------------------------------

  // The strokes at the pad's CSS size, dark on a transparent background: the boxes the server
  // answers with are then in the pad's own CSS pixels.
  function asPng() {
    const canvas = document.createElement("canvas");
    const {width, height} = size();
    canvas.width = Math.round(width);
    canvas.height = Math.round(height);
    drawStrokes(canvas.getContext("2d"), 1, "#000");
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  function cancel() {
    if (inFlight) inFlight.abort();
    inFlight = null;
    section.setAttribute("aria-busy", "false");
  }

  async function read() {
    clearTimeout(timer);
    cancel();
    if (!strokes.length) {
      show(null, "Nothing to read: write a number first.");
      return;
    }
    const controller = inFlight = new AbortController();
    section.setAttribute("aria-busy", "true");
    statusLine.textContent = "Reading…";
    try {
      const response = await fetch(app.dataset.readUrl, {method: "POST", body: await asPng(), signal: controller.signal});
      const answer = await response.json().catch(() => null);
      if (controller !== inFlight) return;
      if (response.ok && answer && answer.digits) show(answer);
      else show(null, (answer && answer.error) || `The server could not answer (HTTP ${response.status}).`);
    } catch (error) {
      if (error.name !== "AbortError") show(null, "Could not reach the server. Check the connection and try again.");
    } finally {
      if (controller === inFlight) cancel();
    }
  }

  function percent(p) {
    return `${p >= 0.995 || p < 0.005 ? Math.round(p * 100) : (p * 100).toFixed(1)}%`;
  }

  function show(answer, error) {
    section.classList.remove("stale");
    section.classList.toggle("failed", !answer);
    statusLine.classList.toggle("error", !answer);
    boxes = answer ? answer.digits : [];
    textOut.textContent = answer ? answer.text : "";
    confidenceOut.textContent = answer ? `${percent(answer.confidence)} sure` : "";
    digitList.replaceChildren(...boxes.map((digit) => {
      const item = document.createElement("li");
      const seen = document.createElement("img");
      seen.src = digit.input;
      seen.alt = `What the model saw for the digit ${digit.digit}`;
      const label = document.createElement("span");
      label.textContent = `${digit.digit} · ${percent(digit.confidence)}`;
      item.append(seen, label);
      return item;
    }));
    statusLine.textContent = answer ? `The model reads ${answer.text}, ${percent(answer.confidence)} sure.` : error;
    redraw();
  }

  function clear() {
    clearTimeout(timer);
    cancel();
    strokes.length = 0;
    boxes = [];
    textOut.textContent = confidenceOut.textContent = "";
    digitList.replaceChildren();
    section.classList.remove("stale", "failed");
    statusLine.classList.remove("error");
    statusLine.textContent = "Nothing written yet.";
    redraw();
  }

  document.getElementById("number-clear").addEventListener("click", clear);
  document.getElementById("number-read").addEventListener("click", read);
  new ResizeObserver(fit).observe(pad);
})();
