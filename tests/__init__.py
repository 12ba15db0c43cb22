"""One axis: tests/<dir>/ tests the repository's <dir>/ (flaskService, modelTrain,
dockerFlaskService, benchmarks), and the modules directly in tests/ test the root (README, docs/,
the Makefile) and this tree's layout. Inside a folder, a subfolder gathers one kind of test of that
code: flaskService/hostile/ (adversarial input), flaskService/feedback/ (the corrections store, on a
real PostgreSQL), flaskService/page/ (the page in Chromium), dockerFlaskService/containers/ (the
image and the compose stack run by Podman). docs/architecture.md#tests says what each folder covers."""
