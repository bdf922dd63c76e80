# rehearse: two commands on a fresh Debian/Ubuntu machine.
#   make demo   installs what is missing, rehearses the demo release, prints the report
#   make test   installs what is missing, runs every test against real PostgreSQL

CARGO ?= cargo
REHEARSE := target/debug/rehearse

.PHONY: deps build demo demo-alembic test fuzz clean

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

# A long property-test run of the input parsers (make test runs a short one).
fuzz: deps
	PROPTEST_CASES=$${PROPTEST_CASES:-20000} $(CARGO) test --locked --test fuzz

clean:
	$(CARGO) clean
	rm -rf reports .venv
