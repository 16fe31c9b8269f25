# The two commands: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GEN := clients/python/tidings/v1/mail_pb2.py

.PHONY: all setup proto run test lint bench clean postfix clamav rspamd prometheus isync mutt

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

setup proto: $(STAMP) $(GEN) postfix clamav rspamd prometheus isync mutt

# Debian's Postfix, the real MTA of tests/interop and bench/outbound, installed when missing:
# no configuration and no service start (policy-rc.d), so nothing listens on :25; each test
# and benchmark writes its own config directory and runs its own instance (postfix -c DIR).
postfix:
	@dpkg-query -W -f='$${Status}' postfix 2>/dev/null | grep -q 'install ok installed' || { \
	  if [ "$$(id -u)" != 0 ]; then echo "postfix is not installed (needs root to install): tests/interop will skip"; exit 0; fi; \
	  made_policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	    chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi; \
	  apt-get update -q && \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix; status=$$?; \
	  [ -z "$$made_policy" ] || rm -f /usr/sbin/policy-rc.d; exit $$status; }

# Debian's clamd (clamav-daemon), the virus scanner the local cluster starts with the test
# signatures of deploy/clamav/ (no freshclam: no network for signatures), and Debian's rspamd,
# which tests/smtp/test_rspamd*.py runs with its own config directory; both installed when
# missing, as postfix above: non-interactive, no service started (policy-rc.d).
define debian_package
@dpkg-query -W -f='$${Status}' $(1) 2>/dev/null | grep -q 'install ok installed' || { \
  if [ "$$(id -u)" != 0 ]; then echo "$(1) is not installed (needs root to install): $(2)"; exit 0; fi; \
  made_policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi; \
  apt-get update -q && \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(1); status=$$?; \
  [ -z "$$made_policy" ] || rm -f /usr/sbin/policy-rc.d; exit $$status; }
endef

clamav:
	$(call debian_package,clamav-daemon,the cluster runs without virus scanning only with TIDINGS_VIRUS_SCAN=off)

rspamd:
	$(call debian_package,rspamd,tests/smtp/test_rspamd.py will skip)

# Debian's prometheus (prometheus and promtool): tests/deploy checks deploy/prometheus.yml and
# deploy/alerts.yml with promtool, unit-tests the alerts, and runs a private Prometheus against a
# local cluster (its own port and data directory); the packaged service is not started.
prometheus:
	$(call debian_package,prometheus,tests/deploy will fail: promtool and prometheus are missing)

# Debian's isync (mbsync), the real IMAP client tests/imap/test_mbsync.py drives against the IMAP edge.
isync:
	$(call debian_package,isync,tests/imap/test_mbsync.py will skip)

# Debian's mutt and tmux: tests/imap/test_mutt.py drives mutt in a tmux pane against the IMAP edge.
mutt:
	$(call debian_package,mutt,tests/imap/test_mutt.py will skip)
	$(call debian_package,tmux,tests/imap/test_mutt.py will skip)

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
