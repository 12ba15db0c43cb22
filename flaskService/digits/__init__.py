"""The image core: bytes -> the arrays the models read -> digits, with no web framework.

Decoding, preprocessing and line removal (preprocess), the number reader's strip and decoding
(sequence), the model contracts and loading (model), the predictor (predictor), the self-check
(selfcheck) and EXIF stripping (image_metadata). It depends on numpy, Pillow, h5py and LiteRT
(TensorFlow and Keras only lazily, to convert or load a Keras file), never on Flask, Werkzeug,
gunicorn, SQLAlchemy or prometheus_client: the HTTP layer (flaskService/*.py) and training
(modelTrain/) both import it. It raises `errors.ImageError`; the HTTP layer answers it as JSON.
"""
