# Shortcuts; each target runs one script under scripts/.
.PHONY: demo test unit lint type bench

## demo: set everything up on a fresh clone and show a failover to a real local LLM server
demo:
	bash scripts/demo.sh

## test: install what the tests need (scripts/setup-*.sh) and run the whole suite
test:
	bash scripts/test.sh

## unit: the core's and the plugins' own tests, on fakes only (no setup scripts: the tests
## that need a real agent, llama.cpp or redis-server, and the slow ones, are marked and left
## to `make test`)
unit:
	.venv/bin/python -m pytest core/tests plugins -q -m "not real_agent and not real_server and not redis and not slow"

## lint: ruff over everything (the format is checked too)
lint:
	.venv/bin/ruff format --check core plugins tests bench docs
	.venv/bin/ruff check core plugins tests bench docs

## type: mypy, strict on the core and the plugins (warn_unused_ignores on)
type:
	.venv/bin/mypy

## bench: run the benchmarks (python -m bench --quick for a smoke run)
bench:
	.venv/bin/python -m bench
