# Shortcuts; each target runs one script under scripts/.
.PHONY: demo test bench

## demo: set everything up on a fresh clone and show a failover to a real local LLM server
demo:
	bash scripts/demo.sh

## test: install what the tests need (scripts/setup-*.sh) and run the whole suite
test:
	bash scripts/test.sh

## bench: run the benchmarks (python -m bench --quick for a smoke run)
bench:
	.venv/bin/python -m bench
