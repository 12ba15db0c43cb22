"""POST /feedback stores a correction in SQLite and in a real PostgreSQL; bad corrections get the one
JSON error shape; export and delete are the operator's; the caps, retention, metadata and a failing store."""
import base64
import io
import multiprocessing
import os
import queue
import subprocess
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from flaskService import create_app
from flaskService.feedback_store import FeedbackStore, corrections, engine_for
from flaskService.digits.preprocess import preprocess_image
from tests.helpers import assert_error, gunicorn_start_error, image_bytes

ADMIN = {"X-API-Key": "operator-key"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A FEEDBACK_DB URL of an empty store: a SQLite file, or a new database on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'feedback.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def make_client(predictor):
    def make(database, **config):
        app = create_app({"TESTING": True, "PREDICTOR": predictor, "FEEDBACK_DB": database,
                          "ADMIN_API_KEYS": ("operator-key",), **config})
        return app.test_client()
    return make


@pytest.fixture
def digits(mnist):
    """Three MNIST test digits as PNG bytes, with their labels."""
    return [(image_bytes(mnist["x_test"][i]), int(mnist["y_test"][i])) for i in range(3)]


def pixels(data):
    """What an image file decodes to: its mode, size and pixels (the first frame, upright)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


def stored_rows(database):
    engine = engine_for(database)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(corrections).order_by(corrections.c.id)).all()
    engine.dispose()
    return rows


def test_a_correction_is_stored_with_what_the_model_saw_and_said(database, make_client, predictor, digits):
    """The image's pixels, the 28x28 input, the label, the model's own answer and confidence, its
    version and sha256, the request id and source: in SQLite and in PostgreSQL."""
    client = make_client(database)
    png, _ = digits[0]
    response = client.post("/feedback", data={"image": (io.BytesIO(png), "d.png"), "label": "3",
                                              "predicted": "7", "request_id": "abc-123", "source": "page"})
    assert response.status_code == 201, response.json
    answer = response.json
    expected_input = preprocess_image(png)
    answered = predictor.classify(expected_input[None], 0.5)  # what /predict answers for it
    probabilities = answered.probabilities[0]
    assert answer["label"] == 3 and answer["predicted"] == int(probabilities.argmax())
    assert answer["model"] == {"name": predictor.name, "version": predictor.version}
    [row] = stored_rows(database)
    assert row.id == answer["id"] and row.label == 3 and row.client_predicted == 7
    assert row.predicted == answer["predicted"] and row.confidence == pytest.approx(probabilities.max(), abs=1e-6)
    assert pixels(row.image) == pixels(png) and row.image_format == "png"
    np.testing.assert_array_equal(np.frombuffer(row.input, "<f4").reshape(28, 28), expected_input)
    assert row.model_version == predictor.version and row.model_sha256 == predictor.sha256
    assert row.request_id == "abc-123" and row.source == "page"
    assert abs(row.created_at.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)) < timedelta(minutes=5)


@pytest.mark.parametrize("form", ("base64", "data_url", "raw_body"))
def test_every_form_predict_takes_is_a_correction(form, make_client, tmp_path, digits):
    database = f"sqlite:///{tmp_path / 'feedback.db'}"
    client = make_client(database)
    png, label = digits[1]
    text = base64.b64encode(png).decode()
    if form == "base64":
        response = client.post("/feedback", json={"image": text, "label": label})
    elif form == "data_url":
        response = client.post("/feedback", json={"image": "data:image/png;base64," + text, "label": str(label)})
    else:
        response = client.post(f"/feedback?label={label}&source=script", data=png, content_type="image/png")
    assert response.status_code == 201, response.json
    [row] = stored_rows(database)
    assert row.label == label and pixels(row.image) == pixels(png)


BAD = [
    ({"json": {"image": "PNG", "label": 10}}, 400, "invalid_label"),
    ({"json": {"image": "PNG", "label": -1}}, 400, "invalid_label"),
    ({"json": {"image": "PNG", "label": True}}, 400, "invalid_label"),
    ({"json": {"image": "PNG", "label": 3.0}}, 400, "invalid_label"),
    ({"json": {"image": "PNG", "label": "seven"}}, 400, "invalid_label"),
    ({"json": {"image": "PNG"}}, 400, "invalid_label"),
    ({"json": {"image": "PNG", "label": 3, "predicted": 12}}, 400, "invalid_parameter"),
    ({"json": {"image": "PNG", "label": 3, "request_id": "no spaces allowed"}}, 400, "invalid_parameter"),
    ({"json": {"image": "PNG", "label": 3, "source": 7}}, 400, "invalid_parameter"),
    ({"json": {"label": 3}}, 400, "no_image"),
    ({"json": {"image": 5, "label": 3}}, 400, "invalid_json"),
    ({"json": [1, 2]}, 400, "invalid_json"),
    ({"data": "{'image':", "content_type": "application/json"}, 400, "invalid_json"),
    ({"json": {"image": "not*base64", "label": 3}}, 400, "invalid_base64"),
    ({"json": {"image": base64.b64encode(b"\x89PNG\r\n\x1a\n broken").decode(), "label": 3}}, 400, "invalid_image"),
    ({"json": {"image": "BLANK", "label": 3}}, 422, "blank_image"),
    ({"data": {"label": "3"}}, 400, "no_image"),
    ({"data": {"image": [(io.BytesIO(b"PNG"), "a.png"), (io.BytesIO(b"PNG"), "b.png")], "label": "3"}}, 400,
     "too_many_images"),
    ({"data": b"seven", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ({"data": "PNG", "content_type": "image/png"}, 400, "invalid_label"),
]


@pytest.mark.parametrize(("request_args", "status", "code"), BAD, ids=[f"{s}-{c}-{i}" for i, (_, s, c) in enumerate(BAD)])
def test_bad_corrections_get_the_json_error_and_store_nothing(request_args, status, code, make_client, tmp_path,
                                                               digits):
    database = f"sqlite:///{tmp_path / 'feedback.db'}"
    client = make_client(database)
    png = digits[0][0]
    blank = image_bytes(np.full((40, 40), 255, np.uint8))

    def fill(value):  # "PNG" stands for a real digit's bytes, "BLANK" for an empty page
        if value in ("PNG", "BLANK"):
            return base64.b64encode(png if value == "PNG" else blank).decode()
        if isinstance(value, tuple) and value[0].getvalue() == b"PNG":
            return (io.BytesIO(png), value[1])
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    args = dict(request_args)
    if isinstance(args.get("json"), dict):
        args["json"] = {k: fill(v) for k, v in args["json"].items()}
    elif isinstance(args.get("data"), dict):
        args["data"] = {k: fill(v) for k, v in args["data"].items()}
    elif args.get("data") == "PNG":
        args["data"] = png
    assert_error(client.post("/feedback", **args), status, code)
    assert stored_rows(database) == []


def test_an_oversized_body_is_413(make_client, tmp_path, digits):
    client = make_client(f"sqlite:///{tmp_path / 'feedback.db'}", MAX_CONTENT_LENGTH=1000)
    big = image_bytes(np.random.default_rng(0).integers(0, 255, (100, 100), np.uint8))
    assert_error(client.post("/feedback", data={"image": (io.BytesIO(big), "d.png"), "label": "1"}), 413)


def test_the_cap_refuses_new_corrections_with_507_until_some_are_deleted(database, make_client, digits):
    client = make_client(database, FEEDBACK_MAX_ROWS=2)
    ids = [client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": label}).json["id"]
           for png, label in digits[:2]]
    png, label = digits[2]
    assert_error(client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": label}),
                 507, "feedback_full")
    assert client.delete(f"/feedback/{ids[0]}", headers=ADMIN).status_code == 204
    assert client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": label}).status_code == 201
    assert len(stored_rows(database)) == 2


def one_expired(database, make_client, digits):
    """A client keeping corrections 30 days, and the ids of the two it stored (the first two
    digits): `old`, dated back 31 days, and `new`."""
    client = make_client(database, FEEDBACK_RETENTION_DAYS=30)
    old, new = (client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": label}).json["id"]
                for png, label in digits[:2])
    engine = engine_for(database)
    with engine.begin() as connection:
        connection.execute(corrections.update().where(corrections.c.id == old).values(
            created_at=datetime.now(timezone.utc) - timedelta(days=31)))
    engine.dispose()
    return client, old, new


def test_corrections_older_than_the_retention_are_deleted(database, make_client, digits):
    client, old, new = one_expired(database, make_client, digits)
    png, label = digits[2]
    client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": label})
    assert [row.id for row in stored_rows(database)] == [new, new + 1]


def test_an_expired_correction_is_never_read_even_with_no_correction_since(database, make_client, digits):
    """Retention holds on reading too: export, its manifest and delete leave out a correction that
    expired after the last one was added, and the export deletes it for good."""
    client, old, new = one_expired(database, make_client, digits)
    archive = zipfile.ZipFile(io.BytesIO(client.get("/feedback/export", headers=ADMIN).data))
    images = [name for name in archive.namelist() if not name.endswith("/") and name != "feedback.csv"]
    assert images == [f"{digits[1][1]}/{new}.png"]
    assert [line.split(",")[0] for line in archive.read("feedback.csv").decode().splitlines()[1:]] == [str(new)]
    assert [row.id for row in stored_rows(database)] == [new]
    assert_error(client.delete(f"/feedback/{old}", headers=ADMIN), 404, "feedback_not_found")


def noise_png(side, seed):
    """A grey PNG of random pixels: it does not compress, so it takes about side * side bytes."""
    return image_bytes(np.random.default_rng(seed).integers(0, 255, (side, side), np.uint8))


def test_the_byte_cap_refuses_what_would_pass_it_and_413s_what_never_fits(database, make_client):
    """FEEDBACK_MAX_BYTES counts images and inputs: at the cap 507 (as at the row cap, older
    corrections are not dropped for new ones); an image larger than the whole cap is 413."""
    images = [noise_png(100, seed) for seed in range(3)]  # about 10 KB each, 3,136 bytes of input
    cap = 2 * (len(images[0]) + 28 * 28 * 4) + 5000
    client = make_client(database, FEEDBACK_MAX_BYTES=cap)
    for png in images[:2]:
        assert client.post("/feedback", data={"image": (io.BytesIO(png), "d.png"), "label": "1"}).status_code == 201
    assert_error(client.post("/feedback", data={"image": (io.BytesIO(images[2]), "d.png"), "label": "1"}),
                 507, "feedback_full")
    assert_error(client.post("/feedback", data={"image": (io.BytesIO(noise_png(200, 9)), "d.png"), "label": "1"}),
                 413, "feedback_too_large")
    rows = stored_rows(database)
    assert len(rows) == 2 and sum(len(row.image) + len(row.input) for row in rows) <= cap


def test_an_oversized_flood_keeps_the_store_under_its_byte_cap(database, make_client):
    """48 uploads of about 1 MB from 8 threads at once, against a 6 MB cap: the store stays under it
    (the adds are serialised), every request ends, and the figures are printed. Each thread has an
    app of its own, with its own store, as gunicorn's workers do."""
    cap = 6_000_000
    flood = [noise_png(1000, seed % 6) for seed in range(48)]
    # Made before the threads start: CPython 3.11 can fail compiling (Werkzeug's routes) in several
    # threads at once ("AST constructor recursion depth mismatch").
    clients = queue.SimpleQueue()
    for _ in range(8):
        clients.put(make_client(database, FEEDBACK_MAX_BYTES=cap))

    def send(png):
        client = clients.get()
        try:
            started = time.monotonic()
            response = client.post("/feedback?label=1", data=png, content_type="image/png")
            return response.status_code, time.monotonic() - started
        finally:
            clients.put(client)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, flood))
    rows = stored_rows(database)
    stored = sum(len(row.image) + len(row.input) for row in rows)
    seconds = sorted(took for _, took in answers)
    print(f"flood of {len(flood)} x {len(flood[0]) / 1e6:.2f} MB on {database.split(':')[0]}: "
          f"{stored / 1e6:.2f} MB stored in {len(rows)} rows (cap {cap / 1e6:.0f} MB); "
          f"statuses {sorted(set(status for status, _ in answers))}; per request median {seconds[len(seconds) // 2]:.2f} s, "
          f"max {seconds[-1]:.2f} s")
    assert stored <= cap and len(rows) == sum(status == 201 for status, _ in answers) == 5
    assert {status for status, _ in answers} == {201, 507}


def gps_exif():
    """EXIF with a camera and a GPS position, as a phone writes it."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "PhoneMaker", "Phone 12"  # Make, Model
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 7.5), 3: "E", 4: (4.0, 53.0, 30.0)})  # GPSInfo
    return exif


def test_a_gps_jpeg_is_stored_without_metadata_and_with_its_pixels(database, make_client, mnist):
    """A JPEG with GPS EXIF, an ICC profile, XMP and a comment comes out of the export as a JPEG with
    none of them, decoding to the very pixels the upload decodes to, and preprocesses to the input
    the model saw (what retraining from an export reads)."""
    photo = Image.fromarray(255 - mnist["x_test"][0]).resize((280, 280)).convert("RGB")
    upload = image_bytes(photo, "JPEG", quality=90, exif=gps_exif(), comment=b"taken at home",
                         icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
                         xmp=b"<x:xmpmeta><rdf:Description exif:GPSLatitude='52,22N'/></x:xmpmeta>")
    with Image.open(io.BytesIO(upload)) as opened:
        assert opened.getexif().get_ifd(0x8825) and {"icc_profile", "xmp", "comment"} <= set(opened.info)
    client = make_client(database)
    response = client.post("/feedback", data={"image": (io.BytesIO(upload), "photo.jpg"), "label": "7"})
    assert response.status_code == 201, response.json
    archive = zipfile.ZipFile(io.BytesIO(client.get("/feedback/export", headers=ADMIN).data))
    exported = archive.read(f"7/{response.json['id']}.jpg")
    assert b"PhoneMaker" not in exported and b"Exif" not in exported and b"xmpmeta" not in exported
    with Image.open(io.BytesIO(exported)) as image:
        assert not image.getexif() and not {"exif", "icc_profile", "xmp", "comment"} & set(image.info)
    assert pixels(exported) == pixels(upload)
    [row] = stored_rows(database)
    np.testing.assert_array_equal(preprocess_image(exported), np.frombuffer(row.input, "<f4").reshape(28, 28))


def _rotated_jpeg(picture):
    exif = gps_exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show
    return image_bytes(picture.convert("RGB"), "JPEG", quality=90, exif=exif)


def _png_with_text(picture):
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "taken at home")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>52,22N</x:xmpmeta>")
    return image_bytes(picture, "PNG", pnginfo=info, exif=gps_exif(), dpi=(300, 300),
                       icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


@pytest.mark.parametrize(("make_upload", "upright"), (
    (_rotated_jpeg, lambda picture: picture.convert("RGB").transpose(Image.Transpose.ROTATE_270)),
    (_png_with_text, None),
    (lambda picture: image_bytes(picture, "WEBP", lossless=True, exif=gps_exif()), None),
    (lambda picture: image_bytes(picture.convert("P"), "GIF", comment=b"taken at home", transparency=0), None),
), ids=("jpeg-rotated", "png-text", "webp-exif", "gif-comment"))
def test_other_images_are_stored_as_png_without_metadata(make_upload, upright, make_client, tmp_path, mnist):
    """A JPEG that EXIF rotates, a PNG with text, EXIF, ICC and dpi, a WebP with EXIF and a GIF with a
    comment: each is kept as a PNG of its upright pixels and nothing else."""
    picture = Image.fromarray(255 - mnist["x_test"][1]).resize((112, 84))
    upload = make_upload(picture)
    database = f"sqlite:///{tmp_path / 'feedback.db'}"
    response = make_client(database).post("/feedback", data={"image": (io.BytesIO(upload), "d"), "label": "2"})
    assert response.status_code == 201, response.json
    [row] = stored_rows(database)
    assert row.image_format == "png"
    chunks = {row.image[i + 4:i + 8] for i in _png_chunk_offsets(row.image)}
    assert chunks <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}, chunks
    with Image.open(io.BytesIO(upload)) as original:
        original.load()
        expected = ImageOps.exif_transpose(original)
    assert pixels(row.image)[1:] == (expected.size, expected.tobytes())
    if upright is not None:  # and that is the picture turned as its EXIF said
        assert pixels(row.image)[1] == upright(picture).size
    np.testing.assert_array_equal(preprocess_image(row.image), np.frombuffer(row.input, "<f4").reshape(28, 28))


def _png_chunk_offsets(data):
    offset = 8
    while offset < len(data):
        yield offset
        offset += 12 + int.from_bytes(data[offset:offset + 4], "big")


def test_export_is_a_zip_of_digit_folders_with_the_stored_images(database, make_client, digits):
    client = make_client(database)
    ids = {}
    for png, label in digits:
        ids[client.post("/feedback", data={"image": (io.BytesIO(png), "d.png"), "label": str(label)}).json["id"]] = (
            png, label)
    response = client.get("/feedback/export", headers=ADMIN)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = set(archive.namelist())
    assert {f"{d}/" for d in range(10)} <= names
    for correction_id, (png, label) in ids.items():
        assert pixels(archive.read(f"{label}/{correction_id}.png")) == pixels(png)
    manifest = archive.read("feedback.csv").decode().splitlines()
    assert manifest[0].startswith("id,created_at,label,predicted") and len(manifest) == 1 + len(ids)


def test_delete_removes_a_correction_everywhere(database, make_client, digits):
    client = make_client(database)
    png, label = digits[0]
    correction_id = client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": label}).json["id"]
    assert client.delete(f"/feedback/{correction_id}", headers=ADMIN).status_code == 204
    assert stored_rows(database) == []
    assert_error(client.delete(f"/feedback/{correction_id}", headers=ADMIN), 404, "feedback_not_found")
    archive = zipfile.ZipFile(io.BytesIO(client.get("/feedback/export", headers=ADMIN).data))
    assert [name for name in archive.namelist() if not name.endswith("/")] == ["feedback.csv"]
    assert_error(client.delete("/feedback/99999999999", headers=ADMIN), 404, "not_found")


@pytest.mark.parametrize(("admin_keys", "headers", "status", "code"), (
    ((), ADMIN, 403, "admin_disabled"),
    (("operator-key",), {}, 401, "unauthorized"),
    (("operator-key",), {"X-API-Key": "predict-key"}, 403, "forbidden"),
    (("operator-key",), {"Authorization": "Bearer wrong"}, 403, "forbidden"),
))
def test_export_and_delete_are_for_admin_keys_only(admin_keys, headers, status, code, make_client, tmp_path):
    """No admin key configured: off (403) for everyone; otherwise 401 without a key and 403 with any
    other key, an API_KEYS key included."""
    client = make_client(f"sqlite:///{tmp_path / 'feedback.db'}", ADMIN_API_KEYS=admin_keys, API_KEYS=("predict-key",))
    assert_error(client.get("/feedback/export", headers=headers), status, code)
    assert_error(client.delete("/feedback/1", headers=headers), status, code)


def test_with_api_keys_a_correction_needs_one(make_client, tmp_path, digits):
    client = make_client(f"sqlite:///{tmp_path / 'feedback.db'}", API_KEYS=("predict-key",))
    body = {"image": base64.b64encode(digits[0][0]).decode(), "label": 1}
    assert_error(client.post("/feedback", json=body), 401, "unauthorized")
    assert client.post("/feedback", json=body, headers={"X-API-Key": "predict-key"}).status_code == 201


def test_feedback_off_stores_nothing_and_says_so(make_client, digits):
    client = make_client("off")
    png, label = digits[0]
    assert_error(client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": label}),
                 404, "feedback_disabled")
    assert_error(client.get("/feedback/export", headers=ADMIN), 404, "feedback_disabled")
    assert client.post("/predict", data=png, content_type="image/png").status_code == 200


def test_outcomes_are_counted_in_metrics(make_client, tmp_path, digits):
    client = make_client(f"sqlite:///{tmp_path / 'feedback.db'}")

    def count(outcome):
        for line in client.get("/metrics").get_data(as_text=True).splitlines():
            if line.startswith(f'feedback_total{{outcome="{outcome}"}}'):
                return float(line.split()[-1])
        return 0.0

    stored, rejected = count("stored"), count("rejected")
    png, label = digits[0]
    client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": label})
    client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": 11})
    assert (count("stored"), count("rejected")) == (stored + 1, rejected + 1)


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB filesystem (tmpfs, mounted as root) that fills up."""
    if os.getuid() != 0:
        pytest.skip("mounting a filesystem needs root (as CI and `make test` run)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_gives_503_on_feedback_and_predict_keeps_working(small_disk, make_client, mnist):
    client = make_client(f"sqlite:///{small_disk / 'feedback.db'}")
    noisy = image_bytes(np.random.default_rng(1).integers(0, 255, (90, 90), np.uint8))  # ~8 KB that will not compress
    digit = image_bytes(mnist["x_test"][0])
    statuses = []
    for _ in range(60):
        response = client.post("/feedback", data={"image": (io.BytesIO(noisy), "d.png"), "label": "1"})
        statuses.append(response.status_code)
        if response.status_code != 201:
            break
    assert statuses[0] == 201 and statuses[-1] == 503, statuses
    assert_error(response, 503, "feedback_unavailable")
    assert response.headers["Retry-After"]
    assert client.post("/predict", data=digit, content_type="image/png").json["digit"] == int(mnist["y_test"][0])


def test_an_unwritable_default_path_leaves_the_app_serving(make_client, tmp_path, digits):
    """A read-only filesystem (the container's root): the app starts, /feedback says 503, /predict works."""
    if os.getuid() == 0:
        readonly = tmp_path / "readonly"
        readonly.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(readonly)], check=True)
    else:
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o555)
    try:
        client = make_client(f"sqlite:///{readonly / 'data' / 'feedback.db'}")
        png, label = digits[0]
        assert_error(client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": label}),
                     503, "feedback_unavailable")
        assert_error(client.get("/feedback/export", headers=ADMIN), 503, "feedback_unavailable")
        assert client.post("/predict", data=png, content_type="image/png").status_code == 200
    finally:
        if os.getuid() == 0:
            subprocess.run(["umount", "-l", str(readonly)], check=True)


def _create_schema(database, barrier):
    barrier.wait()  # every process issues its CREATE at the same moment, as gunicorn's workers do
    FeedbackStore(database, max_rows=10, retention_days=1, max_bytes=10**6).ensure_schema()


def test_schema_creation_is_safe_from_many_processes_at_once(database):
    barrier = multiprocessing.get_context("spawn").Barrier(6)
    processes = [multiprocessing.get_context("spawn").Process(target=_create_schema, args=(database, barrier))
                 for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * 6
    assert stored_rows(database) == []


@pytest.mark.parametrize(("name", "value"), (("FEEDBACK_DB", "mysql://db/feedback"), ("FEEDBACK_DB", "feedback.db"),
                                             ("FEEDBACK_MAX_ROWS", "0"), ("FEEDBACK_RETENTION_DAYS", "a year")))
def test_a_wrong_setting_stops_gunicorn_with_one_line(name, value):
    assert gunicorn_start_error({name: value}).startswith(f"error: {name} must be")
