# dnb-hubspot-bridge: the two set-up commands are `make run` and `make test`.

# A development signing secret shared by `make run` and `make demo`; set
# BRIDGE_WEBHOOK_SECRET to use your own. Never use this one in production.
DEV_WEBHOOK_SECRET := whsec_ZGV2ZWxvcG1lbnQtc2lnbmluZy1zZWNyZXQ=
export BRIDGE_WEBHOOK_SECRET ?= $(DEV_WEBHOOK_SECRET)

CONFIG ?= config.yaml
SAMPLES ?= samples
BIN := target/release/dnb-hubspot-bridge

.PHONY: build run demo test fmt lint bench-ingest bench-ingest-postgres bench-hubspot bench-hubspot-replicas bench-journal bench-pull bench-import

build:
	cargo build --release --locked

## Run the service in dry-run with config.yaml (no HubSpot account needed).
run: build
	$(BIN) --config $(CONFIG) serve

## Sign the project's synthetic D&B samples (samples/) and post them to the running service, as a relay would.
demo: build
	$(BIN) --config $(CONFIG) send $(SAMPLES)/*.json $(SAMPLES)/*.ndjson
	@sleep 2  # one batch wait, so the workers have processed what was sent
	@echo
	@curl -fsS http://127.0.0.1:8080/metrics | grep -E '^bridge_(notifications_(received|processed)_total|journal_notifications)' | grep -v ' 0$$' || true

## Formatting, lints and every test.
test:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	# Not --all-targets: the benches are harness-less programs that need a release build
	# and run for minutes; clippy above still compiles them.
	cargo test --locked --lib --bins --tests

fmt:
	cargo fmt --all

lint:
	cargo clippy --locked --all-targets -- -D warnings

## Ingest benchmark: release build, service on one core, load generator on the other.
bench-ingest: build
	cargo bench --locked --bench ingest

## The same on a PostgreSQL journal (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test;
## a fresh schema per phase, dropped afterwards); BENCH_REPLICAS=2 runs two services on it.
bench-ingest-postgres: build
	BENCH_STORAGE=postgres cargo bench --locked --bench ingest

## The journal alone on one core: the writer's ceiling for ingest, without HTTP or workers.
bench-journal:
	cargo bench --locked --bench journal --no-run
	taskset -c 0 cargo bench --locked --bench journal

## HubSpot benchmark: the service against the fake HubSpot portal (lower-tier limits), 1,000 notifications at 100/s.
bench-hubspot: build
	cargo bench --locked --bench hubspot

## The same with three replicas on one PostgreSQL journal (BENCH_POSTGRES_URL, default the tests' server), sharing the HubSpot budget.
bench-hubspot-replicas: build
	BENCH_STORAGE=postgres BENCH_REPLICAS=3 cargo bench --locked --bench hubspot

## D&B pull benchmark: the release binary's `pull --once` drains 10,000 notifications from the fake Direct+ at 5 calls/s.
bench-pull: build
	cargo bench --locked --bench pull

## File-import benchmark: `import` of a 1,000,000-line NOTIFICATION zip (lines/s, peak RSS).
bench-import: build
	cargo bench --locked --bench import
