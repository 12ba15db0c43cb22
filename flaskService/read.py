"""POST /read: the request's images -> the number written in each, digit by digit, as JSON."""
import base64
import io

from flask import Blueprint, current_app, request
from PIL import Image, ImageDraw

from . import metrics, payload
from .digits import preprocess

bp = Blueprint("read", __name__)

BOX_COLOUR = (230, 30, 40)


@bp.post("/read")
def read():
    config = current_app.config
    predictor = current_app.extensions["number_predictor"]
    read_number = current_app.extensions["read_number"]
    with metrics.stage("preprocess"):
        items, is_list = payload.read_items(request._get_current_object(), config["MAX_IMAGES"],
                                            config["MAX_PIXELS"], config["MAX_REQUEST_PIXELS"])
    debug = request.args.get("debug") in ("1", "true")

    def reading(item):
        # Decoded here, one image at a time, and dropped once read: never all of them at once.
        image = payload.to_image(item, config["MAX_PIXELS"])
        # find_ink shrinks a big image in place; the debug picture needs it as decoded.
        decoded = image.copy() if debug else None
        return _reading(read_number(image), decoded)

    with metrics.stage("inference"):
        results = payload.each_item(items, reading) if is_list else [reading(items[0])]
    metrics.record_readings(result["text"] for result in results)
    model = {"name": predictor.name, "version": predictor.version}
    if is_list:
        return {"readings": results, "model": model}
    return {**results[0], "model": model}


def _reading(number, image):
    # Each digit as /predict answers an image (a digits-only model cannot say digit_score: null).
    digits = [{"digit": d.digit, "confidence": d.confidence, "probabilities": [float(p) for p in d.probabilities],
               "is_digit": d.is_digit, "digit_score": d.digit_score, "box": d.box,
               **({"reason": d.reason} if d.reason else {})} for d in number.digits]
    result = {"text": number.text, "confidence": number.confidence, "digits": digits}
    if image is not None:
        result["image"] = _data_url(_with_boxes(image, [d.box for d in number.digits]))
        for digit, seen in zip(digits, number.digits):
            digit["input"] = _data_url(preprocess.encode_png(seen.input))
    return result


def _with_boxes(image, boxes):
    """The uploaded image on white, at most WORK_SIZE px on its longest side, each box drawn on it -> PNG."""
    picture = image.convert("RGBA")
    shrink = min(1.0, preprocess.WORK_SIZE / max(picture.size))
    if shrink < 1:
        picture = picture.resize((max(1, round(picture.width * shrink)), max(1, round(picture.height * shrink))))
    # Boxes are in the uploaded image's pixels; a big JPEG was decoded at a fraction of its size.
    scale = shrink * image.info.get(preprocess.DECODED_SCALE, 1.0)
    paper = Image.new("RGBA", picture.size, "white")
    paper.alpha_composite(picture)
    picture = paper.convert("RGB")
    draw = ImageDraw.Draw(picture)
    for x, y, w, h in boxes:
        draw.rectangle([x * scale, y * scale, (x + w) * scale - 1, (y + h) * scale - 1], outline=BOX_COLOUR,
                       width=max(1, round(min(picture.size) / 100)))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def _data_url(png):
    return "data:image/png;base64," + base64.b64encode(png).decode()
