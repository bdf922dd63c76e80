# rehearse: two commands on a fresh Debian/Ubuntu machine.
#   make demo   installs what is missing, rehearses the demo release, prints the report
#   make test   installs what is missing, runs every test against real PostgreSQL

CARGO ?= cargo
REHEARSE := target/debug/rehearse

.PHONY: deps build demo demo-alembic test clean

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --locked

demo: build
	$(REHEARSE) run scenarios/demo.yaml

# The same release as an Alembic project (production is part way through its history).
demo-alembic: build
	$(REHEARSE) run scenarios/alembic-demo.yaml

test: deps
	$(CARGO) test --locked --no-fail-fast

clean:
	$(CARGO) clean
	rm -rf reports .venv
