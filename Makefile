# The two commands: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GEN := clients/python/tidings/v1/mail_pb2.py

.PHONY: all setup proto run test lint bench clean

all: setup

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || (apt-get update -q && apt-get install -y -q python3-venv)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --config-settings editable_mode=compat -e '.[test,bench]' -e clients/python
	touch $@

$(GEN): $(STAMP) $(wildcard proto/tidings/v1/*.proto) proto/generate.py
	rm -rf clients/python/tidings
	$(BIN)/python proto/generate.py clients/python

setup proto: $(STAMP) $(GEN)

run: setup
	$(BIN)/tidings cluster run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var clients/python/tidings
