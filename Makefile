# Two entry points: `make demo` (end-to-end run on the bundled sample) and `make test` (whole suite).
# Each creates .venv with plain pip and installs what it needs; torch is pinned to the local CPU wheel.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TORCH  := torch==2.13.0

.PHONY: demo test bench venv browser tshark clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[all,test]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tracesynth demo --out demo-out

# Debian's chromium drives the browser test (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "warning: chromium missing and not root; browser tests will be skipped"; fi; }

# Wireshark's tshark drives the protocol-realism metric and its tests (skipped, with the reason, without it).
# The debconf answer keeps apt from asking whether non-superusers may capture packets.
tshark:
	@command -v tshark >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ]; then \
	    (echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	     apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null) \
	    || echo "warning: could not install tshark; protocol-realism tests will be skipped"; \
	  else echo "warning: tshark missing and not root; protocol-realism tests will be skipped"; fi; }

test: $(STAMP) browser tshark
	$(PY) -m pytest -n 2 --dist loadfile -q

bench: $(STAMP)
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
