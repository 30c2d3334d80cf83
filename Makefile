# Two commands do everything on a fresh Debian/Ubuntu machine, as root:
#   make run    install what is missing, start the whole stack with a demo registry
#   make test   install what is missing, run the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_RUN := redis-server docker-registry skopeo
APT_TEST := $(APT_RUN) chromium postgresql podman runc debootstrap
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test bench lint system-run system-test venv keys screenshots

define apt_install
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if ! $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

system-run:
	$(call apt_install,$(APT_RUN))

system-test:
	$(call apt_install,$(APT_TEST))

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# Local secrets for a checkout: Django's key and the credentials key, made once.
keys:
	@mkdir -p var && chmod 700 var
	@[ -s var/secret.key ] || $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret.key
	@[ -s var/credentials.key ] || $(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' > var/credentials.key
	@[ -s var/webhook.key ] || $(PY) -c 'import secrets; print(secrets.token_urlsafe(24))' > var/webhook.key
	@chmod 600 var/*.key

run: system-run venv keys
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py runstack

# The whole suite on SQLite, then again on PostgreSQL (TEST_DATABASE=postgres:
# manifests/stack/postgres.py runs a throwaway cluster of the Debian package on
# 127.0.0.1). The second run covers everything that reaches the database: pages,
# API, scans, pushes, jobs, the workers, faults and browser tests. It leaves
# out tests/registry/: the registry client, references, platforms and media
# types are pure and never touch the database, so running them twice proves
# nothing and only makes `make test` longer.
test: system-test venv keys
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run -v 0
	TEST_DATABASE=sqlite $(PY) -m pytest $(PYTEST_ARGS)
	TEST_DATABASE=postgres $(PY) -m pytest --ignore=tests/registry $(PYTEST_ARGS)

# The benchmark (bench/README.md): about 20 minutes on a quiet machine; `make bench BENCH_ARGS=--quick` for a smoke run.
# It needs PostgreSQL (scale-out, pages) and, for the comparison, the docker and skopeo CLIs.
bench: system-run venv
	$(call apt_install,postgresql)
	$(PY) -m bench $(BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# The gallery under docs/screenshots/: every page at 390 and 1440 px, light and
# dark, from the demo registry (a real Distribution, scanned). Only the few
# PNGs named in docs/screenshots/.gitignore are committed.
screenshots: system-test venv
	$(PY) -m pytest tests/browser/gallery.py -q -p no:cacheprovider $(PYTEST_ARGS)
