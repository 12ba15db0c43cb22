"""The images the hostile suite sends: MNIST digits in every tricky-but-valid encoding, and files that
are broken, hostile or not images at all. Each builder returns bytes; nothing here talks HTTP."""
import random
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw

from tests.helpers import image_bytes

SCALE = 4  # a 28x28 digit drawn 4x larger, on a page with a margin, the way a photo or canvas sends it


def paper(digit):
    """A 28x28 uint8 MNIST digit (white on black) -> an 'L' page: dark ink on white, 4x, with a margin."""
    ink = Image.fromarray(digit).resize((28 * SCALE, 28 * SCALE), Image.Resampling.BILINEAR)
    page = Image.new("L", (28 * SCALE + 40, 28 * SCALE + 24), 0)
    page.paste(ink, (20, 12))
    return Image.fromarray(255 - np.asarray(page))


# --- tricky but valid: each builder draws the digit and returns (bytes, Content-Type) ---------------

def png_grey(digit):
    return image_bytes(paper(digit), "PNG"), "image/png"


def png_16bit_grey(digit):
    # Paper and ink at 16-bit levels no 8-bit reading could produce.
    levels = np.asarray(paper(digit), dtype=np.float64) / 255.0
    return image_bytes(Image.fromarray((3000 + levels * 57000).astype(np.uint16)), "PNG"), "image/png"


def jpeg_cmyk(digit):
    return image_bytes(paper(digit).convert("CMYK"), "JPEG", quality=95), "image/jpeg"


def png_palette_transparent(digit):
    # A 256-grey palette whose white entry is transparent: the page is see-through, the ink is not.
    page = paper(digit)
    image = Image.frombytes("P", page.size, page.tobytes())
    image.putpalette([v for level in range(256) for v in (level, level, level)])
    return image_bytes(image, "PNG", transparency=255), "image/png"


def png_la_canvas(digit):
    # A drawing app's export: black strokes whose opacity is the ink, on a fully transparent canvas.
    alpha = Image.fromarray(255 - np.asarray(paper(digit)))
    return image_bytes(Image.merge("LA", (Image.new("L", alpha.size, 0), alpha)), "PNG"), "image/png"


def png_la_opaque(digit):
    page = paper(digit)
    return image_bytes(Image.merge("LA", (page, Image.new("L", page.size, 255))), "PNG"), "image/png"


def bmp_1bit(digit):
    return image_bytes(paper(digit).point(lambda v: 255 if v > 128 else 0).convert("1"), "BMP"), "image/bmp"


def webp_lossless(digit):
    return image_bytes(paper(digit).convert("RGB"), "WEBP", lossless=True), "image/webp"


def webp_lossy(digit):
    return image_bytes(paper(digit).convert("RGB"), "WEBP", quality=80), "image/webp"


def jpeg_progressive(digit):
    return image_bytes(paper(digit).convert("RGB"), "JPEG", quality=90, progressive=True), "image/jpeg"


def gif_animated(digit, other):
    """Two frames: the digit first, then a different one; the first frame is the picture."""
    frames = [paper(digit).convert("P"), paper(other).convert("P")]
    return image_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0), "image/gif"


def png_animated(digit, other):
    frames = [paper(digit).convert("RGB"), paper(other).convert("RGB")]
    return image_bytes(frames[0], "PNG", save_all=True, append_images=frames[1:]), "image/png"


def png_sent_as_jpeg(digit):
    return image_bytes(paper(digit), "PNG"), "image/jpeg"


def jpeg_sent_as_png(digit):
    return image_bytes(paper(digit).convert("RGB"), "JPEG", quality=90), "image/png"


def webp_sent_as_gif(digit):
    return image_bytes(paper(digit).convert("RGB"), "WEBP", lossless=True), "image/gif"


VALID = {f.__name__: f for f in (png_grey, png_16bit_grey, jpeg_cmyk, png_palette_transparent, png_la_canvas,
                                 png_la_opaque, bmp_1bit, webp_lossless, webp_lossy, jpeg_progressive,
                                 png_sent_as_jpeg, jpeg_sent_as_png, webp_sent_as_gif)}
ANIMATED = {f.__name__: f for f in (gif_animated, png_animated)}

# EXIF orientation n -> how a camera stored the upright picture, so that the viewer's transform undoes it.
_STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
           7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def jpeg_exif_rotated(digit, orientation):
    """A JPEG stored sideways/mirrored with the EXIF orientation tag that puts it upright again."""
    page = paper(digit).convert("RGB")
    if _STORED[orientation] is not None:
        page = page.transpose(_STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return image_bytes(page, "JPEG", quality=92, exif=exif)


def jpeg_with_exif(digit, exif):
    """An upright JPEG carrying the given raw EXIF segment (starting at its TIFF header)."""
    data = image_bytes(paper(digit).convert("RGB"), "JPEG", quality=92)
    segment = b"Exif\x00\x00" + exif
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + data[2:]


def _orientation_exif(value):
    return b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x0112, 3, 1, value, 0) + bytes(4)


BROKEN_EXIF = {
    "orientation 0": _orientation_exif(0),
    "orientation 9": _orientation_exif(9),
    "orientation 65535": _orientation_exif(65535),
    "IFD offset past the end": b"MM\x00*" + struct.pack(">I", 0xFFFFFF00),
    "IFD pointing at itself": b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x8769, 4, 1, 8) + bytes(4),
    "truncated entry": b"II*\x00" + struct.pack("<IH", 8, 5) + struct.pack("<HH", 0x0112, 3),
    "not TIFF at all": b"\xff" * 40,
}


# --- hostile, broken or out of bounds --------------------------------------------------------------

def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_zeros(width, height, bit_depth=1):
    """A complete, valid greyscale PNG of width x height black pixels, compressed block by block so a
    100-megapixel file costs kilobytes to send and a megabyte of memory to make."""
    row = b"\x00" + bytes((width * bit_depth + 7) // 8)
    rows_per_block = max(1, 2 ** 20 // len(row))
    compressor = zlib.compressobj(9)
    blocks = [compressor.compress(row * min(rows_per_block, height - start))
              for start in range(0, height, rows_per_block)]
    data = b"".join(blocks) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def png_text_bomb():
    """A small PNG carrying a zTXt chunk that inflates to 64 MB of text."""
    image = png_of_zeros(8, 8)
    text = b"Comment\x00\x00" + zlib.compress(bytes(64 * 1024 * 1024), 9)
    return image[:-12] + _chunk(b"zTXt", text) + image[-12:]


def gif_screen_bomb():
    """A GIF whose logical screen is 65535x65535 (4.3 gigapixels) around a 1x1 frame."""
    return (b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
            + b",\x00\x00\x00\x00\x01\x00\x01\x00\x00" + b"\x02\x02\x44\x01\x00" + b";")


def bmp_header_bomb():
    """A 54-byte BMP header declaring 30000x30000 pixels, with no pixel data behind it."""
    header = struct.pack("<2sIHHI", b"BM", 54 + 30000 * 30000 * 3, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, 30000, 30000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return header + info


def jpeg_header_bomb(clear_digit):
    """A real JPEG whose frame header is rewritten to claim 60000x60000 pixels."""
    data = bytearray(image_bytes(paper(clear_digit).convert("RGB"), "JPEG"))
    at = data.index(b"\xff\xc0") + 5
    data[at:at + 4] = struct.pack(">HH", 60000, 60000)
    return bytes(data)


def png_bad_crc(clear_digit):
    data = bytearray(png_grey(clear_digit)[0])
    data[29] ^= 0xFF  # inside IHDR's CRC
    return bytes(data)


def tiff(clear_digit):
    return image_bytes(paper(clear_digit), "TIFF")


def ico(clear_digit):
    return image_bytes(paper(clear_digit).resize((32, 32)), "ICO")


SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="28" height="28">'
       b'<text x="4" y="24" font-size="24">7</text></svg>')
SVG_BARE = b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><circle r="9"/></svg>'
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
MAGIC_ONLY = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff\xe0", "gif": b"GIF89a", "bmp": b"BM",
              "webp": b"RIFF\x24\x00\x00\x00WEBPVP8 "}


def random_bytes(size, seed):
    return random.Random(seed).randbytes(size)


def solid(width, height, value, fmt="PNG"):
    return image_bytes(Image.new("L", (width, height), value), fmt)


def page_1bit(side, strokes=()):
    """A side x side 1-bit PNG, white, with `strokes` (lines of (x, y) points on a 0-1 page) drawn in
    black a twentieth of the page wide: about 12 kB (4000 x 4000, a 7) that decode to side^2 pixels."""
    page = Image.new("1", (side, side), 1)
    draw = ImageDraw.Draw(page)
    for stroke in strokes:
        draw.line([(x * side, y * side) for x, y in stroke], fill=0, width=side // 20)
    return image_bytes(page, "PNG", optimize=True)


SEVEN = ([(0.3, 0.2), (0.7, 0.2), (0.45, 0.8)],)  # page_1bit's strokes of a 7
