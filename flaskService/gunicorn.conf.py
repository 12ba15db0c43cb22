"""gunicorn settings for the service: `gunicorn -c flaskService/gunicorn.conf.py`.

Every worker imports TensorFlow and loads the model itself: TensorFlow is not fork-safe, so the
app is never preloaded in the master (no `preload_app`). The master only checks, before forking,
that the configuration and the model file are usable, and stops with one line if not.
"""
import os
import sys

# One thread each for TensorFlow and BLAS per worker: gunicorn already runs one worker per core,
# and more threads per worker would only make workers fight over the same cores. Set before any
# worker imports TensorFlow.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter is not a log line

wsgi_app = "flaskService:create_app()"
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
# Threads let a worker keep connections alive and read a slow upload while another thread
# computes; inference itself is short and serialised per worker.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 5
timeout = 30  # a request takes milliseconds; 30 s means a stuck worker, which is then replaced
graceful_timeout = 20  # on SIGTERM, in-flight requests get this long to finish
# Recycle workers now and then so a slow leak cannot grow forever; jitter keeps them from all
# restarting at once.
max_requests = 20000
max_requests_jitter = 2000
# The heartbeat file lives in memory: faster, and works on a read-only root filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = None  # the app writes its own JSON access line per request
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190


def on_starting(server):
    """Fail fast, before any worker starts, with one clear line instead of a traceback per worker."""
    from flaskService.config import ConfigError, from_environment
    from flaskService.model import ModelLoadError, check_model_file

    try:
        check_model_file(from_environment()["MODEL_PATH"])
    except (ConfigError, ModelLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
