# zftrain: `make demo` and `make test` work on a fresh machine; both run the
# set-up first (idempotent: a second run takes about a second).
CARGO ?= cargo

.PHONY: setup build test demo arch-experiment bench reliability fuzz clean-runs

setup:
	scripts/setup

build: setup
	$(CARGO) build --release

# Every test binary runs even when one fails; the last line sums them all.
test: setup
	CARGO=$(CARGO) scripts/test

demo: build
	scripts/demo

# Section 4.1's diagnosis on a CPU: AlexNet's and ZFNet's first layers
# trained on dead-leaves pictures and compared (docs/training.md). About 40
# minutes on 2 cores.
arch-experiment: build
	scripts/arch-experiment

# Every benchmark, each side by side with its PyTorch peer where there is one
# (docs/benchmarks.md records the figures). About 15 minutes on 2 cores.
bench: build
	bench/loader
	bench/train
	$(CARGO) bench -q -p zftrain-data --bench decode
	bench/train-step --batch 64 --steps 4 --warmup 1
	$(CARGO) bench -q -p zftrain --bench projections

# The fault-injection and hostile-input suite in full (docs/reliability.md
# records the figures): 24 SIGKILL trials and the other fault tests, the
# hostile inputs, the exhaustive config checks, the rendezvous under rogue
# peers and the multi-node faults, and 60 s of fuzzing per parser. `make test` runs the same tests with 6 trials and replays the
# fuzzing seeds and regressions. About 15 minutes on 2 cores.
reliability: setup
	ZFTRAIN_RELIABILITY_TRIALS=24 $(CARGO) test -q -p zftrain --test e2e -- faults:: hostile:: hostile_runs:: stops:: --nocapture --test-threads 1
	$(CARGO) test -q -p zftrain --lib config:: -- --nocapture
	$(CARGO) test -q -p zftrain-checkpoints -p zftrain-data -p zftrain-tensorboard
	$(CARGO) test -q -p zftrain-parallel --lib rendezvous:: -- --nocapture
	ZFTRAIN_RELIABILITY_TRIALS=24 $(CARGO) test -q -p zftrain --test e2e -- cluster:: --nocapture --test-threads 1
	scripts/fuzz 60

fuzz: setup
	scripts/fuzz 60

clean-runs:
	rm -rf runs/demo
