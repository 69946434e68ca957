# charrnn: `make report` builds report/report.pdf, `make test` runs every test.
# Both set up what they need on a fresh machine: .venv, Python packages, the
# default corpus, and (as root with apt-get) Debian's TeX Live, pandoc, poppler
# and Chromium.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all setup sysdeps corpus test report bench clean

all: report

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

setup: $(STAMP)

sysdeps:
	@bash tools/sysdeps.sh

corpus: setup
	$(PY) -m charrnn corpus --build

test: setup sysdeps corpus
	$(PY) -m pytest

# make report [SETTINGS=my.toml] [CORPUS=data/goblet_book.txt] [PARTS=assignment] [ONLY=03] [FORCE=1 | FORCE='assignment*']
report: setup sysdeps corpus
	$(PY) -m charrnn.report $(if $(SETTINGS),--settings '$(SETTINGS)') $(if $(CORPUS),--corpus '$(CORPUS)') $(if $(PARTS),--parts $(PARTS)) \
		$(if $(ONLY),--only $(ONLY)) $(if $(FORCE),--force $(foreach f,$(filter-out 1,$(FORCE)),'$(f)'))

bench: setup corpus
	$(PY) -m charrnn bench

clean:
	rm -rf runs report/build report/report.pdf figures/*.png
