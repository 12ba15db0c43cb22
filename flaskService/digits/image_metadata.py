"""An uploaded image without its metadata: what the feedback store keeps of a correction's image.

EXIF (GPS position, camera, time, a thumbnail of the uncropped photo), XMP, ICC profiles, PNG text
chunks and comments are dropped; the pixels are kept exactly. A JPEG whose EXIF says it is upright
keeps its compressed data byte for byte and loses only its metadata segments: re-encoding a photo as
PNG makes it 5-7 times larger, and decoding it again gives the very pixels the upload gave. Every
other image (PNG, GIF, BMP, WebP, and a JPEG that EXIF says to rotate) is decoded, turned upright as
preprocessing turns it, and saved as PNG, which is lossless. Either way preprocessing the stored
image gives what the model saw, so retraining from an export (modelTrain/corrections.py) reads it right.

Like preprocess.py, this is image bytes in and out: no Flask.
"""
import io

from PIL import Image, ImageOps

from .preprocess import ALLOWED_FORMATS

_ORIENTATION = 0x0112  # the EXIF tag; 1 is upright
# Modes PNG stores as they are; any other (CMYK, YCbCr, ...) is saved as RGB, as preprocessing reads it.
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}
# JFIF's marker only says "YCbCr, version 1.01, square pixels" once its density and thumbnail are
# gone; kept because it decides how a decoder reads three colour components.
_PLAIN_JFIF = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def without_metadata(data):
    """(image bytes with no metadata, file name extension: "jpg" or "png") of an image that
    preprocessing has already accepted (so it opens, and is within MAX_PIXELS)."""
    with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
        if image.format in ("JPEG", "MPO") and image.getexif().get(_ORIENTATION, 1) == 1:
            stripped = _jpeg_without_metadata(data)
            if stripped is not None and _decodes_alike(stripped, image):
                return stripped, "jpg"
        image.load()  # the first frame of an animation, as preprocessing reads it
        upright = ImageOps.exif_transpose(image)
    # A new image holds the pixels and, for palette and grey images, which colour is transparent:
    # nothing of `info` (exif, icc_profile, dpi, text, comment, xmp) reaches the encoder.
    if upright.mode == "PA":
        upright = upright.convert("RGBA")
    elif upright.mode not in _PNG_MODES:
        upright = upright.convert("RGBA" if "A" in upright.mode else "RGB")
    clean = upright.copy()
    clean.info = {key: upright.info[key] for key in ("transparency",) if key in upright.info}
    buffer = io.BytesIO()
    clean.save(buffer, "PNG")
    return buffer.getvalue(), "png"


def _jpeg_without_metadata(data):
    """The JPEG's segments without APP1-APP13, APP15 (EXIF, XMP, ICC, MPF, Photoshop, ...) and comments,
    up to its first end-of-image (a camera's MPO keeps its first picture only); None if the stream
    is not one this parser follows to its end, so the caller re-encodes it instead."""
    if data[:2] != b"\xff\xd8":
        return None
    kept, i = [b"\xff\xd8"], 2
    while i + 1 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xD9:  # end of image
            kept.append(b"\xff\xd9")
            return b"".join(kept)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            kept.append(data[i:i + 2])
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        end = i + 2 + length
        if length < 2 or end > len(data):
            return None
        segment = data[i:end]
        if marker == 0xE0 and segment[4:9] == b"JFIF\x00":
            kept.append(_PLAIN_JFIF)
        elif marker == 0xEE and segment[4:9] == b"Adobe":  # its colour transform decides the pixels
            kept.append(segment)
        elif not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            kept.append(segment)
        i = end
        if marker == 0xDA:  # a scan: entropy-coded bytes up to the next marker other than a restart
            scan_end = i
            while True:
                scan_end = data.find(b"\xff", scan_end)
                if scan_end < 0 or scan_end + 1 >= len(data):
                    return None
                following = data[scan_end + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:  # a stuffed 0xFF, a restart marker
                    scan_end += 2
                    continue
                break
            kept.append(data[i:scan_end])
            i = scan_end
    return None


def _decodes_alike(stripped, original):
    """The stripped JPEG opens as the same size and mode and decodes to its end (at 1/8 scale, cheap)."""
    try:
        with Image.open(io.BytesIO(stripped), formats=("JPEG",)) as image:
            if (image.size, image.mode) != (original.size, original.mode):
                return False
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
            return True
    except Exception:  # noqa: BLE001  anything Pillow raises means: re-encode instead
        return False
