"""The image core's one exception: what is wrong with an input, in the terms an answer needs."""


class ImageError(Exception):
    """An input the core cannot read (not an image, blank, too large, ...): carries the HTTP status
    it means, a machine code and a message a person understands. The HTTP layer's one error handler
    (flaskService/errors.py) answers it as {"error": message, "code": code, "status": status}."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
