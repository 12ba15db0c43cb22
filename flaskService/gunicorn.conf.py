"""gunicorn settings for the service: `gunicorn -c flaskService/gunicorn.conf.py`.

Every worker loads the model itself: TensorFlow is not fork-safe, so the app is never preloaded in
the master (no `preload_app`). The master checks the configuration and the model before forking,
and stops with one line if either is unusable. At start and on SIGHUP the model is copied and
checked in a child process (flaskService/rollout.py), which also makes its LiteRT conversion
when none is beside it, so the workers load that without importing TensorFlow. Workers load only
a copy that passed.
"""
import glob
import os
import shutil
import signal
import sys
import tempfile


def _choose_metrics_dir():
    """PROMETHEUS_MULTIPROC_DIR if set, else one named after this master (in memory when possible),
    so two servers on one machine never mix their counts."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(base, f"prometheus-{os.getpid()}")


# Before anything imports flaskService (the worker class below does, and the package imports
# prometheus_client): prometheus_client picks its storage once, when first imported, and without
# the directory set every worker would count in its own memory, which /metrics never sees.
_choose_metrics_dir()

from flaskService.worker import BalancedWorker  # noqa: E402

# One thread each for TensorFlow and BLAS per worker: gunicorn already runs one worker per core,
# and more threads per worker would only make workers fight over the same cores. Set before any
# worker imports TensorFlow.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter is not a log line

wsgi_app = "flaskService:create_app()"
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
# gthread (a worker keeps connections alive and reads an upload while another thread computes),
# with connections shared evenly between workers and recycled one worker at a time: worker.py says how.
worker_class = "flaskService.worker.BalancedWorker"
# Two threads, not more: a request is pure CPU under one GIL, so more threads only interleave requests
# and stretch each one's latency (p99 doubled with 4 or 8 in benchmarks/bench.py) for no more
# throughput. Slow clients are nginx's to absorb (it buffers whole requests before passing them on).
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
keepalive = 5
timeout = 30  # a request takes milliseconds; 30 s means a stuck worker, which is then replaced
graceful_timeout = 20  # on SIGTERM, in-flight requests get this long to finish
# Recycling, so a slow leak cannot grow forever, rarely enough not to cost speed (a worker reloads
# the model): a million requests, or memory grown past GUNICORN_MAX_GROWTH_MB, which under a memory
# limit must fit what the limit leaves (compose and k8s set it;
# tests/dockerFlaskService/test_memory.py checks).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000000"))
max_requests_jitter = max_requests // 10
BalancedWorker.max_growth_mb = int(os.environ.get("GUNICORN_MAX_GROWTH_MB", "256"))
# The heartbeat file lives in memory: faster, and works on a read-only root filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = None  # the app writes its own JSON access line per request
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# gunicorn 27 opens a control socket under $HOME by default; containers run with no usable HOME.
control_socket_disable = True


def on_starting(server):
    """Fail fast, before any worker starts, with one clear line instead of a traceback per worker."""
    from flaskService import rollout
    from flaskService.config import ConfigError, from_environment
    from flaskService.digits.model import ModelLoadError

    try:
        settings = from_environment()
        for setting in rollout.MODEL_SETTINGS:
            served = rollout.roll_out(setting, settings[setting], settings["INFERENCE_BACKEND"])
            server.log.info("serving %s (sha256 %s)", served.source, served.sha256[:12])
    except (ConfigError, ModelLoadError) as e:
        rollout.clean_up()
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    _empty_metrics_dir()


def on_reload(server):
    """SIGHUP rolls out the files now at MODEL_PATH and NUMBER_MODEL_PATH, each once it is checked:
    gunicorn then starts new workers, which load them, and stops the old ones gracefully. A model
    that fails the check is not rolled out, and the new workers load the one served until now.
    Nothing raised here may escape: gunicorn's master would exit."""
    from flaskService import rollout
    from flaskService.config import ConfigError, from_environment
    from flaskService.digits.model import ModelLoadError

    try:
        settings = from_environment()
    except ConfigError as e:
        server.log.error("SIGHUP: configuration refused, still serving the models loaded: %s", e)
        return
    for setting in rollout.MODEL_SETTINGS:
        kept = rollout.served[setting]
        try:
            served = rollout.roll_out(setting, settings[setting], settings["INFERENCE_BACKEND"])
        except (ModelLoadError, OSError) as e:
            server.log.error("SIGHUP: new model refused, still serving %s (sha256 %s): %s",
                             kept.source, kept.sha256[:12], e)
            continue
        server.log.info("SIGHUP: rolling out %s (sha256 %s, was %s)", served.source, served.sha256[:12],
                        kept.sha256[:12])


def post_fork(server, worker):
    """The worker loads the last models that passed the check, whatever is at their paths now."""
    from flaskService import rollout

    for setting, served in rollout.served.items():
        os.environ[setting] = str(served.path)


def post_worker_init(worker):
    """On SIGTERM a worker first turns its readiness to 503, then gunicorn drains it: no new
    connections, in-flight requests finish (within graceful_timeout), and a request that arrives on
    a kept-alive connection meanwhile is still answered -- with the 503, a load balancer's probe."""
    readiness = worker.wsgi.extensions["readiness"]

    def stop(signum, frame):
        readiness.set("shutting down")
        worker.handle_exit(signum, frame)

    signal.signal(signal.SIGTERM, stop)


# prometheus_client multiprocess mode: every worker writes its metrics to files in one directory and
# /metrics sums them, so a scrape counts all workers whichever one answers it.
def _empty_metrics_dir():
    """Create the directory, or empty it: counts left from an earlier run would add to this one's."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for name in glob.glob(os.path.join(path, "*.db")):
        os.remove(name)


def child_exit(server, worker):
    """Drop the dead worker's live gauges (its counters stay, so totals never go down) and its record
    on the balance board."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    if isinstance(worker, BalancedWorker):
        worker.forget()  # its siblings stop weighing its connections at once


def on_exit(server):
    from flaskService import rollout

    rollout.clean_up()
    # Ours if named after this master. Not a module global: SIGHUP re-reads this file, resetting them.
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if os.path.basename(path) == f"prometheus-{os.getpid()}":
        shutil.rmtree(path, ignore_errors=True)
