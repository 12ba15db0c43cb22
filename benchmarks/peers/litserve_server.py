"""The model behind LitServe 0.2, as its documentation builds a server: a LitAPI whose setup() loads
the model, decode_request() reads the upload (LitServe hands over the multipart form), predict()
runs it; a LitServer with a worker per core on the CPU.

    .venv-bench/bin/python -m benchmarks.peers.litserve_server --port 8000

Workers: WEB_CONCURRENCY (like the service), default the CPU count.
"""
import argparse

import litserve as ls

from benchmarks.peers import WORKERS, answer, load_predictor, pixels


class DigitAPI(ls.LitAPI):
    def setup(self, device):
        self.predictor = load_predictor()

    def decode_request(self, request):
        return pixels(request["image"].file.read())

    def predict(self, inputs):
        return answer(self.predictor, inputs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = ls.LitServer(DigitAPI(), accelerator="cpu", workers_per_device=WORKERS)
    server.run(host=args.host, port=args.port, generate_client_file=False)
