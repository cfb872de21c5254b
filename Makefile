# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DEMO_APPOINTMENTS ?= 5000
DEMO_NAME ?= Clínica Boa Vista
export FLASK_APP = alignwork

.PHONY: run port-free test install bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "AlignWork needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed

# `make run` serves one process with gevent's worker (many connections at once, and the
# dashboards' live streams): with the default SimpleCache every request then sees the same
# cache, so a write invalidates for all of them (see docs/deploy.md).

# A local signing key, made once, so tokens survive restarts and every worker accepts them.
instance/config.py:
	@mkdir -p instance
	@$(PYTHON) -c 'import secrets; print("# Local settings (git-ignored).\nSECRET_KEY = " + repr(secrets.token_urlsafe(48)))' > $@
	@echo "wrote $@ with a new SECRET_KEY"

# Whether gunicorn could listen on HOST:PORT, checked first: otherwise the banner and its tokens
# are printed and gunicorn then retries "Address already in use" for half a minute. Bound as
# gunicorn binds (SO_REUSEADDR), so a port in TIME_WAIT is free and one being listened on is not.
PORT_CHECK = import socket, sys; \
	family, kind, proto, _, address = socket.getaddrinfo(sys.argv[1], int(sys.argv[2]), type=socket.SOCK_STREAM)[0]; \
	probe = socket.socket(family, kind, proto); \
	probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
	probe.bind(address)
# Empty when free, else the last line of the check's error ("OSError: [Errno 98] Address already in use").
PORT_PROBLEM = $(shell $(PYTHON) -c '$(strip $(PORT_CHECK))' '$(HOST)' '$(PORT)' 2>&1 | tail -n 1)

# Before anything else `make run` does, in one line: "Makefile:NN: *** make run: ...  Stop."
port-free:
	$(if $(PORT_PROBLEM),$(error make run: cannot listen on $(HOST):$(PORT) ($(PORT_PROBLEM)); stop what is using it, or choose another address, e.g. make run PORT=8001))

run: port-free install instance/config.py
	$(BIN)/flask db upgrade
	$(BIN)/flask seed --tenant demo --name "$(DEMO_NAME)" --appointments $(DEMO_APPOINTMENTS) --if-empty
	@token=$$($(BIN)/flask tenants token demo --expires 30d 2>/dev/null | tail -n 1); \
	admin=$$($(BIN)/flask tenants token --admin --expires 30d 2>/dev/null | tail -n 1); \
	echo; \
	echo "AlignWork on http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/api/docs)"; \
	echo "Demo tenant token (30 days):"; \
	echo "  $$token"; \
	echo "Dashboard (the token travels in the fragment, never to the server's logs):"; \
	echo "  http://$(HOST):$(PORT)/#token=$$token"; \
	echo "Try:"; \
	echo "  curl -i -H 'Authorization: Bearer $$token' 'http://$(HOST):$(PORT)/api/v1/appointments/mega-stats?tz=America/Recife'"; \
	echo "Admin token (30 days; operations endpoints such as /metrics and cache-metrics):"; \
	echo "  $$admin"; \
	echo "Operator page (cache hit rate and its history):"; \
	echo "  http://$(HOST):$(PORT)/ops#token=$$admin"; \
	echo
	GUNICORN_WORKERS=1 $(BIN)/gunicorn -c gunicorn.conf.py -b $(HOST):$(PORT) wsgi:app

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
