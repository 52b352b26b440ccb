# zftrain: `make demo` and `make test` work on a fresh machine; both run the
# set-up first (idempotent: a second run takes about a second).
CARGO ?= cargo

.PHONY: setup build test demo clean-runs

setup:
	scripts/setup

build: setup
	$(CARGO) build --release

test: setup
	$(CARGO) test --workspace

demo: build
	scripts/demo

clean-runs:
	rm -rf runs/demo
