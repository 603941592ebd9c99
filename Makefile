# I/O Models Lab.  The first `make lab-up` does all set-up: a virtualenv with
# the lab installed, the base image (pulled, or bootstrapped with mmdebstrap
# when no registry answers) and the lab's image.
#
#   make lab-up MODEL=threads      start MODEL and the classic 3-client swarm
#   make lab-watch                 see it live: who is served, who waits
#   make lab-logs / lab-status     read its events, list what runs
#   make tour                      the article's argument, one live experiment at a time
#   make lab-down                  remove everything the lab started
#   make test                      the whole test suite, live containers included

PYTHON ?= python3
VENV   ?= .venv
MODEL  ?= threads
ARGS   ?=
LAB    := $(VENV)/bin/lab
STAMP  := $(VENV)/.installed

.PHONY: setup lab-up lab-down lab-logs lab-watch lab-status models tour test check compare bench stress clean help

help:
	@sed -n '1,14p' Makefile | sed 's/^# \{0,1\}//'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	@# an editable install makes setuptools print a notice box: not what a first run should see
	PYTHONWARNINGS=ignore $(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

setup: $(STAMP)

lab-up: $(STAMP)
	$(LAB) up $(MODEL) $(ARGS)

lab-down: $(STAMP)
	$(LAB) down $(ARGS)

lab-logs: $(STAMP)
	$(LAB) logs $(ARGS)

lab-watch: $(STAMP)
	$(LAB) watch $(ARGS)

tour: $(STAMP)
	$(LAB) tour $(ARGS)

lab-status: $(STAMP)
	$(LAB) status $(ARGS)

models: $(STAMP)
	$(LAB) models

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(ARGS)

check: $(STAMP)
	$(LAB) check --all $(ARGS)

compare: $(STAMP)
	$(LAB) compare $(ARGS)

bench: $(STAMP)
	$(LAB) bench $(ARGS)

stress: $(STAMP)
	$(VENV)/bin/python tests/stress_kill.py $(ARGS)

# without the virtualenv there is no lab to stop anything with: no need to make one
clean:
	if [ -x $(LAB) ]; then $(LAB) down --all; fi
	rm -rf $(VENV) runs .pytest_cache
