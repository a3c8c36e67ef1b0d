# Two entry points a newcomer needs: `make app` (set up + launch on demo data) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := data/demo

.PHONY: app app-lake setup test dev lint bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	# torch first, pinned: the CPU wheel on local disk, never a multi-GB CUDA build
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.3,<2.14" --index-url https://download.pytorch.org/whl/cpu

setup: $(BIN)/python
	$(BIN)/pip install -q -e .
	@test -f $(DEMO)/customers.parquet || $(BIN)/python -m profile_core demo-data --customers 2000 --seed 7 --out $(DEMO)

app: setup
	$(BIN)/streamlit run app.py --server.headless true

# the app on a partitioned data set, read-only: make app-lake LAKE=/data/lake FEATURES=/data/features.parquet
app-lake: setup
	@test -n "$(LAKE)" -a -n "$(FEATURES)" || (echo "usage: make app-lake LAKE=<lake folder> FEATURES=<its feature file>"; exit 2)
	PROFILE_LAKE="$(LAKE)" PROFILE_LAKE_FEATURES="$(FEATURES)" $(BIN)/streamlit run app.py --server.headless true

dev: setup
	$(BIN)/pip install -q -e ".[dev,scale]"
	@# browser tests: Debian's Chromium (never `playwright install`) and a CJK font for readable screenshots
	@(command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi wqy) || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null)

test: dev
	$(BIN)/python -m pytest -q

lint: dev
	$(BIN)/ruff check profile_core ui app_pages app.py tests
