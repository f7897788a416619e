# Two entry points that work on a fresh Debian machine as root: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the gateway and its tests need (GnuPG for sealing, Dovecot for IMAP tests).
DEB_PACKAGES := python3 python3-venv gnupg openssl dovecot-imapd

.PHONY: demo test lint typecheck bench system-packages clean

system-packages:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(STAMP): pyproject.toml | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# system-packages runs every time (a quick dpkg check): a package added to DEB_PACKAGES
# reaches machines whose venv is already built.
test: system-packages $(STAMP) lint typecheck
	$(BIN)/pytest -q

demo: system-packages $(STAMP)
	$(BIN)/python -m gateway demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
