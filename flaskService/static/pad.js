// What the page's two pads (app.js: one digit, number.js: a whole number) share: following one
// pointer at a time as it draws (Pointer Events, so mouse, touch and pen are one path) and painting
// strokes with a round pen.
"use strict";

window.Pad = {
  // Paint `strokes` (lists of points) on a 2D context; `toPixels` maps a point to its pixels.
  paint(target, strokes, toPixels, width, colour) {
    target.lineCap = "round";
    target.lineJoin = "round";
    target.lineWidth = width;
    target.strokeStyle = target.fillStyle = colour;
    for (const stroke of strokes) {
      const points = stroke.map(toPixels);
      target.beginPath();
      if (points.length === 1) { // a tap is a dot
        target.arc(points[0][0], points[0][1], width / 2, 0, 2 * Math.PI);
        target.fill();
        continue;
      }
      target.moveTo(...points[0]);
      for (const point of points.slice(1)) target.lineTo(...point);
      target.stroke();
    }
  },

  // Follow the strokes drawn on `canvas`, one pointer at a time (a second finger is ignored, and
  // only a mouse's main button draws): onStart(point) when it goes down, onMove(points) as it moves
  // (every coalesced event, so fast strokes stay smooth), onEnd() when it lifts or is lost.
  // `pointOf(event)` gives a point in the caller's units.
  track(canvas, pointOf, {onStart, onMove, onEnd}) {
    let pointer = null;
    canvas.addEventListener("pointerdown", (event) => {
      if (pointer !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
      event.preventDefault();
      pointer = event.pointerId;
      canvas.setPointerCapture(event.pointerId);
      onStart(pointOf(event));
    });
    canvas.addEventListener("pointermove", (event) => {
      if (event.pointerId !== pointer) return;
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      onMove((events.length ? events : [event]).map(pointOf));
    });
    const end = (event) => {
      if (event.pointerId !== pointer) return;
      pointer = null;
      onEnd();
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("lostpointercapture", end);
  },
};
