# scconcepts — build the executable book and run the tests.
#
#   make book     create .venv if needed, execute every chapter (profile "default"), build the
#                 book strictly and print the path of _build/html/index.html
#   make test     unit tests + smoke execution of every notebook + strict build checks (both
#                 cores: pytest-xdist by file; the smoke book runs once, in the background)
#   make test-fast  unit tests only (no notebook, no book build), both cores
#   make smoke    execute and build the book with the tiny "smoke" profile
#   make paper    the paper's settings (params/paper.yaml: Census atlases, Census scVI, scGPT
#                 whole-human, GPU); stops within seconds listing the downloads if absent
#   make mathjax  vendor MathJax from npm into book/_static/mathjax (done by book/test/smoke)
#   make clean    remove executed notebooks and the built site (keeps .venv and artifacts/)
#
# Needs Python 3.11 (python3), and npm once for MathJax; nothing else leaves the machine.

SHELL := /bin/bash
.DEFAULT_GOAL := book

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= default
MATHJAX_VERSION := 3.2.2
MATHJAX_STAMP := book/_static/mathjax/VERSION
# scGPT 0.2.4 pins scvi-tools < 1 and a torchtext that cannot load with torch >= 2.4, so it is
# installed without its dependencies, plus the two it really imports (ipython, datasets);
# scconcepts.models.scgpt registers a pure-Python stand-in for torchtext.vocab.
SCGPT_PKGS := "scgpt==0.2.4"
SCGPT_DEPS := ipython datasets

export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Headless matplotlib for scripts and tests; the runner gives kernels the (headless) inline
# backend so that figures still appear in the executed notebooks.
export MPLBACKEND := Agg

.PHONY: book test test-fast smoke paper mathjax env clean distclean

env: $(STAMP)

# (Re)install when pyproject.toml changes. torch first, alone: the pinned CPU wheel, not the
# CUDA build that a looser requirement would pull.
$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[book,test]"
	$(PY) -m pip install --no-deps $(SCGPT_PKGS)
	$(PY) -m pip install $(SCGPT_DEPS)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (scconcepts)"
	@touch $@

$(MATHJAX_STAMP): | $(STAMP)
	$(PY) -m scconcepts.book mathjax --version $(MATHJAX_VERSION)

mathjax: $(MATHJAX_STAMP)

book: $(STAMP) $(MATHJAX_STAMP)
	$(PY) -m scconcepts.book all --profile $(PROFILE)

smoke: $(STAMP) $(MATHJAX_STAMP)
	$(PY) -m scconcepts.book all --profile smoke

# Paper scale: needs the downloads of README "Run at paper scale" (python -m
# scconcepts.data.census download --profile paper) and a CUDA GPU; the runner checks the inputs
# before any notebook.
paper: $(STAMP)
	$(PY) -m scconcepts.data.census check --profile paper
	$(MAKE) --no-print-directory mathjax
	$(PY) -m scconcepts.book all --profile paper

test: $(STAMP) $(MATHJAX_STAMP)
	$(PY) -m pytest -x -q -n 2 --dist loadfile

test-fast: $(STAMP)
	$(PY) -m pytest -x -q -n 2 --dist loadfile -m "not slow"

clean:
	rm -rf _build book/_executed

distclean: clean
	rm -rf book/_static/mathjax artifacts $(VENV)
