# The few commands people type. Everything installs itself on first use.
VENV ?= .venv
BENCH_VENV ?= .venv-bench
PYTHON := $(VENV)/bin/python
PORT ?= 5000
MNIST_NPZ ?= ../shared/data/mnist.npz
export PORT MNIST_NPZ

.PHONY: run test train bench system-deps

run: $(VENV)/.run-deps
	$(VENV)/bin/gunicorn -c flaskService/gunicorn.conf.py

test: $(VENV)/.test-deps system-deps
	$(PYTHON) -m pytest

train: $(VENV)/.test-deps
	$(PYTHON) modelTrain/train.py --data $(MNIST_NPZ)

bench: $(VENV)/.test-deps $(BENCH_VENV)/.bench-deps system-deps
	$(PYTHON) benchmarks/bench.py --peers-python $(BENCH_VENV)/bin/python

$(VENV)/.run-deps: requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# The peers `make bench` compares with (BentoML, LitServe) get a virtualenv of their own: they are
# never installed with the service, its tests or its image.
$(BENCH_VENV)/.bench-deps: requirements.txt requirements-bench.txt
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	touch $@

$(VENV)/.test-deps: requirements.txt requirements-test.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	touch $@ $(VENV)/.run-deps

# Debian packages the tests drive for real: Chromium (the page), nginx (the load balancer), wrk (bench).
SYSTEM_TOOLS := /usr/bin/chromium /usr/sbin/nginx /usr/bin/wrk
system-deps:
	@missing=""; for f in $(SYSTEM_TOOLS); do test -x $$f || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium nginx wrk fonts-dejavu-core; \
	  else echo "needs: sudo apt-get install chromium nginx wrk" >&2; exit 1; fi; fi
