"""The model behind BentoML 1.4, as its documentation builds a service: a class decorated with
@bentoml.service, the model loaded in __init__, one @bentoml.api method whose typed parameter
(a PIL image) BentoML reads from a multipart field of the same name.

    .venv-bench/bin/bentoml serve benchmarks.peers.bentoml_service:DigitClassifier --port 3000

Workers: WEB_CONCURRENCY (like the service), default the CPU count.
"""
import bentoml
from PIL.Image import Image

from benchmarks.peers import WORKERS, answer, load_predictor, pixels


@bentoml.service(workers=WORKERS)
class DigitClassifier:
    def __init__(self):
        self.predictor = load_predictor()

    @bentoml.api
    def predict(self, image: Image) -> dict:
        return answer(self.predictor, pixels(image))
