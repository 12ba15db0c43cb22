// The drawing page: strokes on #pad -> a PNG -> POST /predict?debug=1 -> the digit, the ten
// probabilities and the 28x28 image the model saw. The pointer handling and painting are pad.js's.
"use strict";

(() => {
  const PEN = 0.06; // on-screen pen width, as a share of the pad's side
  // The server scales the digit's bounding box to 20 px, so what makes strokes look like MNIST's
  // is the pen width relative to the digit, not to the pad. The PNG sent is therefore the drawing
  // redrawn to fill EXPORT_BOX with an EXPORT_PEN-wide pen, however small it was written.
  const EXPORT_SIZE = 280;
  const EXPORT_BOX = 200;
  const EXPORT_PEN = 22;
  const DEBOUNCE_MS = 350; // a pause this long after pen-up means the digit is finished

  const MESSAGES = {
    blank_image: {draw: "Nothing to read: draw a digit first.", upload: "No digit found in that image."},
    unsupported_image_format: {upload: "That file type is not supported; use a PNG, JPEG, GIF, BMP or WebP image."},
    unsupported_media_type: {upload: "That file is not an image; use a PNG, JPEG, GIF, BMP or WebP image."},
    invalid_image: {upload: "That file could not be read as an image."},
    payload_too_large: {upload: "That image is too large to upload."},
    too_many_pixels: {upload: "That image has too many pixels; use a smaller one."},
  };

  const app = document.getElementById("app");
  const pad = document.getElementById("pad");
  const context = pad.getContext("2d");
  const result = document.getElementById("result");
  const statusLine = document.getElementById("status");
  const digitOut = document.getElementById("digit");
  const confidenceOut = document.getElementById("confidence");
  const bars = Array.from(document.getElementById("probs").children);
  const seen = document.getElementById("seen");
  const modelOut = document.getElementById("model");
  const undoButton = document.getElementById("undo");
  const upload = document.getElementById("upload");

  const strokes = []; // each stroke is a list of [x, y] points, in units of the pad's side
  let timer = 0;
  let inFlight = null; // the AbortController of the prediction being waited for

  // --- Drawing -------------------------------------------------------------------------------

  function ink() {
    return getComputedStyle(pad).color;
  }

  function redraw() {
    context.clearRect(0, 0, pad.width, pad.height);
    Pad.paint(context, strokes, ([x, y]) => [x * pad.width, y * pad.width], PEN * pad.width, ink());
    undoButton.disabled = strokes.length === 0;
  }

  // Keep the bitmap at the pad's displayed size times the pixel ratio, so strokes stay sharp.
  function fitBitmap() {
    const side = Math.max(1, Math.round(pad.getBoundingClientRect().width * devicePixelRatio));
    if (pad.width !== side) {
      pad.width = pad.height = side;
      redraw();
    }
  }

  function pointOf(event) {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height];
  }

  Pad.track(pad, pointOf, {
    onStart(point) {
      clearTimeout(timer);
      cancelPrediction();
      result.classList.add("stale");
      strokes.push([point]);
      redraw();
    },
    onMove(points) { // drawn as it comes: only the new segments, not the whole drawing
      const stroke = strokes[strokes.length - 1];
      const side = pad.width;
      const [x0, y0] = stroke[stroke.length - 1];
      context.lineCap = context.lineJoin = "round";
      context.lineWidth = PEN * side;
      context.strokeStyle = ink();
      context.beginPath();
      context.moveTo(x0 * side, y0 * side);
      for (const point of points) {
        stroke.push(point);
        context.lineTo(point[0] * side, point[1] * side);
      }
      context.stroke();
    },
    onEnd() {
      redraw(); // the same rendering undo will redraw, so taking back a later stroke changes no other pixel
      clearTimeout(timer);
      timer = setTimeout(readDrawing, DEBOUNCE_MS);
    },
  });

  // --- The PNG sent ----------------------------------------------------------------------------

  function drawingAsPng() {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = EXPORT_SIZE;
    const points = strokes.flat();
    if (points.length) {
      const xs = points.map((p) => p[0]);
      const ys = points.map((p) => p[1]);
      const left = Math.min(...xs);
      const top = Math.min(...ys);
      const width = Math.max(...xs) - left;
      const height = Math.max(...ys) - top;
      const scale = EXPORT_BOX / Math.max(width, height, 1e-3);
      const dx = (EXPORT_SIZE - width * scale) / 2;
      const dy = (EXPORT_SIZE - height * scale) / 2;
      // Transparent background, opaque strokes: the server reads the opaque pixels as ink.
      Pad.paint(canvas.getContext("2d"), strokes, ([x, y]) => [dx + (x - left) * scale, dy + (y - top) * scale],
        EXPORT_PEN, "#000");
    }
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  // --- Talking to the server -------------------------------------------------------------------

  function cancelPrediction() {
    if (inFlight) inFlight.abort();
    inFlight = null;
    setBusy(false);
  }

  function setBusy(busy) {
    result.setAttribute("aria-busy", String(busy));
    result.classList.toggle("busy", busy);
  }

  async function readDrawing() {
    clearTimeout(timer);
    await predict(await drawingAsPng(), "draw");
  }

  async function predict(body, source) {
    cancelPrediction();
    const controller = inFlight = new AbortController();
    setBusy(true);
    say(source === "upload" ? "Reading the image…" : "Reading…");
    try {
      // A Blob body sends its own type (image/png); FormData sends multipart with field "image".
      const response = await fetch(app.dataset.predictUrl, {method: "POST", body, signal: controller.signal});
      const answer = await response.json().catch(() => null);
      if (controller !== inFlight) return; // a newer drawing has replaced this one
      if (response.ok && answer && answer.probabilities) {
        show(answer);
        // For static/feedback.js: what was read, so a person can correct it.
        app.dispatchEvent(new CustomEvent("prediction",
          {detail: {answer, image: body, requestId: response.headers.get("X-Request-ID")}}));
      } else fail(messageFor(answer, response.status, source));
    } catch (error) {
      if (error.name === "AbortError") return;
      fail("Could not reach the server. Check the connection and try again.");
    } finally {
      if (controller === inFlight) {
        inFlight = null;
        setBusy(false);
      }
    }
  }

  function messageFor(answer, status, source) {
    const known = answer && MESSAGES[answer.code];
    if (known && known[source]) return known[source];
    if (answer && answer.error) return answer.error;
    return `The server could not answer (HTTP ${status}). Try again in a moment.`;
  }

  // --- Showing the answer ------------------------------------------------------------------------

  function percent(p) {
    return p >= 0.995 || p < 0.005 ? `${Math.round(p * 100)}%` : `${(p * 100).toFixed(1)}%`;
  }

  function say(text, isError = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", isError);
  }

  // When the model says the image is not one digit, the page says so instead of showing a digit
  // it does not believe in; the probabilities stay, so the best guess can still be seen.
  const NOT_ONE_DIGIT = {
    not_a_digit: "That doesn't look like a digit.",
    several_digits: "Several digits: try reading a number.",
  };

  function show(answer) {
    const doubt = answer.is_digit === false ? (NOT_ONE_DIGIT[answer.reason] || NOT_ONE_DIGIT.not_a_digit) : null;
    result.classList.remove("stale", "failed");
    result.classList.toggle("not-digit", Boolean(doubt));
    digitOut.textContent = doubt ? "" : String(answer.digit);
    confidenceOut.textContent = doubt ? "" : `${percent(answer.confidence)} sure`;
    answer.probabilities.forEach((p, digit) => {
      const bar = bars[digit];
      bar.querySelector(".fill").style.height = `${(p * 100).toFixed(1)}%`;
      bar.querySelector(".value").textContent = percent(p);
      bar.classList.toggle("top", !doubt && digit === answer.digit);
    });
    if (answer.input) {
      seen.src = answer.input;
      seen.hidden = false;
    }
    modelOut.textContent = answer.model ? `Model ${answer.model.name}, version ${answer.model.version}` : "";
    say(doubt || `The model reads ${answer.digit}, ${percent(answer.confidence)} sure.`);
  }

  function fail(message) {
    reset();
    result.classList.add("failed");
    say(message, true);
  }

  function reset() {
    result.classList.remove("stale", "failed", "not-digit");
    digitOut.textContent = "";
    confidenceOut.textContent = "";
    for (const bar of bars) {
      bar.querySelector(".fill").style.height = "0";
      bar.querySelector(".value").textContent = "–";
      bar.classList.remove("top");
    }
    seen.hidden = true;
    seen.removeAttribute("src");
    say("Nothing drawn yet.");
  }

  // --- Controls ----------------------------------------------------------------------------------

  function clear() {
    clearTimeout(timer);
    cancelPrediction();
    strokes.length = 0;
    upload.value = "";
    redraw();
    reset();
  }

  function undo() {
    if (!strokes.length) return;
    strokes.pop();
    redraw();
    clearTimeout(timer);
    if (strokes.length) {
      result.classList.add("stale");
      timer = setTimeout(readDrawing, DEBOUNCE_MS);
    } else {
      cancelPrediction();
      reset();
    }
  }

  document.getElementById("clear").addEventListener("click", clear);
  undoButton.addEventListener("click", undo);
  document.getElementById("read").addEventListener("click", readDrawing);
  upload.addEventListener("change", () => {
    const file = upload.files[0];
    if (!file) return;
    clearTimeout(timer);
    strokes.length = 0;
    redraw();
    const form = new FormData();
    form.append("image", file);
    predict(form, "upload");
    upload.value = ""; // choosing the same file again still uploads it
  });
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
    }
  });

  new ResizeObserver(fitBitmap).observe(pad);
  fitBitmap();
})();
