# Thin wrappers over bin/: the scripts hold the logic so they also work
# on a machine without make.
.PHONY: setup lint test lab destroy trace bench
SCENARIO ?=

setup:
	./bin/setup

lint:
	./bin/lint

test:
	SCENARIO="$(SCENARIO)" ./bin/test

lab:
	./bin/lab

destroy:
	./bin/destroy

trace:
	./bin/trace

bench:
	./bin/bench
