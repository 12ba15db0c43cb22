"""Request bodies carrying a batch of encoded images, for each route that takes images: the same
bytes for Flask's test client and for requests. Nothing here talks HTTP."""
import json
import struct

from urllib3 import encode_multipart_formdata

V2_MNIST = "/v2/models/mnist/infer"
V2_NUMBER = "/v2/models/mnist-number/infer"
ROUTES = ("/predict", "/read", V2_MNIST, V2_NUMBER)


def body(route, images):
    """(data, headers) posting `images` (a list of encoded images) to `route` as one batch:
    multipart files to /predict and /read, a binary BYTES tensor to V2 (no base64 to inflate them)."""
    if route.startswith("/v2/"):
        data = b"".join(struct.pack("<I", len(image)) + image for image in images)
        header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [len(images)],
                                         "parameters": {"binary_data_size": len(data)}}]}).encode()
        return header + data, {"Inference-Header-Content-Length": str(len(header)),
                               "Content-Type": "application/octet-stream"}
    data, content_type = encode_multipart_formdata([("image", (f"{i}.png", image, "image/png"))
                                                    for i, image in enumerate(images)])
    return data, {"Content-Type": content_type}
