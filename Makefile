# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DEMO_APPOINTMENTS ?= 5000
export FLASK_APP = alignwork

.PHONY: run test install bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "AlignWork needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed

# `make run` serves one process with four threads: with the default SimpleCache every request
# then sees the same cache, so a write invalidates for all of them (see docs/deploy.md).

# A local signing key, made once, so tokens survive restarts and every worker accepts them.
instance/config.py:
	@mkdir -p instance
	@$(PYTHON) -c 'import secrets; print("# Local settings (git-ignored).\nSECRET_KEY = " + repr(secrets.token_urlsafe(48)))' > $@
	@echo "wrote $@ with a new SECRET_KEY"

run: install instance/config.py
	$(BIN)/flask db upgrade
	$(BIN)/flask seed --tenant demo --appointments $(DEMO_APPOINTMENTS) --if-empty
	@token=$$($(BIN)/flask tenants token demo --expires 30d 2>/dev/null | tail -n 1); \
	echo; \
	echo "AlignWork on http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/api/docs)"; \
	echo "Demo tenant token (30 days):"; \
	echo "  $$token"; \
	echo "Dashboard (the token travels in the fragment, never to the server's logs):"; \
	echo "  http://$(HOST):$(PORT)/#token=$$token"; \
	echo "Try:"; \
	echo "  curl -i -H 'Authorization: Bearer $$token' 'http://$(HOST):$(PORT)/api/v1/appointments/mega-stats?tz=America/Recife'"; \
	echo
	GUNICORN_WORKERS=1 GUNICORN_THREADS=4 $(BIN)/gunicorn -c gunicorn.conf.py -b $(HOST):$(PORT) wsgi:app

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
