# zftrain: `make demo` and `make test` work on a fresh machine; both run the
# set-up first (idempotent: a second run takes about a second).
CARGO ?= cargo

.PHONY: setup build test demo bench clean-runs

setup:
	scripts/setup

build: setup
	$(CARGO) build --release

test: setup
	$(CARGO) test --workspace

demo: build
	scripts/demo

# Every benchmark, each side by side with its PyTorch peer where there is one
# (docs/benchmarks.md records the figures). About 15 minutes on 2 cores.
bench: build
	bench/loader
	bench/train
	$(CARGO) bench -q -p zftrain-data --bench decode
	bench/train-step --batch 64 --steps 4 --warmup 1
	$(CARGO) bench -q -p zftrain --bench projections

clean-runs:
	rm -rf runs/demo
