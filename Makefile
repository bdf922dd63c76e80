# rehearse: two commands on a fresh Debian/Ubuntu machine.
#   make demo   installs what is missing, rehearses the demo release, prints the report
#   make test   installs what is missing, runs every test against real PostgreSQL
#               and a real Docker engine (started, and its test image built, when missing)

CARGO ?= cargo
REHEARSE := target/debug/rehearse

# The image the docker tests run (scripts/docker-test-image.sh builds it).
REHEARSE_TEST_IMAGE ?= rehearse-postgres:15
export REHEARSE_TEST_IMAGE

.PHONY: deps docker-test-image build demo test clean

deps:
	@scripts/deps.sh

docker-test-image:
	@scripts/docker-test-image.sh $(REHEARSE_TEST_IMAGE)

build: deps
	$(CARGO) build --locked

demo: build
	$(REHEARSE) run scenarios/demo.yaml

test: deps docker-test-image
	$(CARGO) test --locked --no-fail-fast

clean:
	$(CARGO) clean
	rm -rf reports
