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

test: system-deps $(VENV)/.test-deps
	$(PYTHON) -m pytest

# Train the digit model, measure is_digit on the evaluation sets and write the figures into its
# card; then train the number reader.
train: system-deps $(VENV)/.test-deps
	$(PYTHON) modelTrain/train.py --data $(MNIST_NPZ) --seed 1
	$(PYTHON) modelTrain/evaluate.py flaskService/model.h5 --data $(MNIST_NPZ) --rejection \
	  --card flaskService/model.json --out docs/images/confusion.png --reliability docs/images/reliability.png
	$(PYTHON) modelTrain/number_model.py --data $(MNIST_NPZ) --seed 1

bench: system-deps $(VENV)/.test-deps $(BENCH_VENV)/.bench-deps
	$(PYTHON) benchmarks/bench.py --peers-python $(BENCH_VENV)/bin/python

# Development serves with TensorFlow at hand, to convert model.h5 (the image serves without it).
$(VENV)/.run-deps: requirements.txt requirements-train.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-train.txt
	touch $@

# The peers `make bench` compares with (BentoML, LitServe) get a virtualenv of their own: they are
# never installed with the service, its tests or its image.
$(BENCH_VENV)/.bench-deps: requirements.txt requirements-bench.txt
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	touch $@

$(VENV)/.test-deps: requirements.txt requirements-train.txt requirements-test.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	touch $@ $(VENV)/.run-deps

# Debian packages the tests drive for real: Chromium (the page), nginx (the load balancer), wrk
# (bench), PostgreSQL (the feedback store; tests start their own server), and Podman with what it
# needs here (runc; netavark, aardvark-dns and iptables for compose's networks, names and published
# ports) plus debootstrap, which builds the stand-ins for upstream images
# (tests/dockerFlaskService/containers/engine.py); Tesseract, which modelTrain/evaluate_numbers.py
# measures the number reader against; Debian's venv module (its python3 splits it out) and CA
# certificates (the Python stand-in image copies them); and data: fonts that training sets letters
# in (DejaVu, URW) and others only the evaluation uses (Liberation, FreeFont, Comic Neue), and
# Fashion-MNIST, which only the evaluation uses.
SYSTEM_PACKAGES := chromium nginx wrk postgresql podman runc netavark aardvark-dns iptables debootstrap gettext-base tesseract-ocr \
	python3-venv ca-certificates \
	fonts-dejavu-core fonts-dejavu-extra fonts-urw-base35 fonts-liberation fonts-freefont-ttf fonts-comic-neue dataset-fashion-mnist
SYSTEM_FILES := /usr/bin/chromium /usr/sbin/nginx /usr/bin/wrk /usr/bin/pg_ctlcluster /usr/bin/podman /usr/sbin/runc \
	/usr/lib/podman/netavark /usr/lib/podman/aardvark-dns /usr/sbin/iptables /usr/sbin/debootstrap /usr/bin/envsubst /usr/bin/tesseract \
	/usr/lib/python3.11/ensurepip/__init__.py /etc/ssl/certs/ca-certificates.crt \
	/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/truetype/dejavu/DejaVuSans-ExtraLight.ttf \
	/usr/share/fonts/opentype/urw-base35/NimbusSans-Regular.otf \
	/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf /usr/share/fonts/truetype/freefont/FreeSans.ttf \
	/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
system-deps:
	@missing=""; for f in $(SYSTEM_FILES); do test -e $$f || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES); \
	  else echo "needs: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; fi; fi
