# Isengard: the two commands of the README, and a few conveniences.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench compat clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null
	touch $(STAMP)

## Start the server with ./orthanc.json (HTTP 8042, DICOM 4242, ./OrthancStorage).
## (Byte-compiled first: with PYTHONDONTWRITEBYTECODE set, compiling at each start took ~0.5 s.)
run: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 server >/dev/null
	$(BIN)/python -m server orthanc.json

# The index-dependent tests run a second time with every server on PostgreSQL.
POSTGRESQL_TESTS = tests/test_changes_find.py tests/test_labels.py tests/test_rest_resources.py \
	tests/test_find_extended.py tests/test_find_answers.py tests/test_wildcards.py tests/test_extra_main_tags.py \
	tests/test_index_totals.py tests/test_revisions.py tests/test_files_api.py tests/test_metrics.py \
	tests/test_modify.py tests/test_modify_levels.py tests/test_split_merge.py tests/test_archive.py \
	tests/test_archive_levels.py tests/test_hostile_deletes.py tests/test_durability.py tests/test_jobs.py \
	tests/test_script_database.py tests/test_storage_modes.py tests/test_storage_commitment.py \
	tests/test_rest_errors_tools.py
# Two pytest-xdist workers, each given whole files (a file's tests share its servers, and a few
# files, the UI's, go through one story in order): the suite mostly waits on the servers it
# starts (0.6 of a core busy in one process), and took 12-14 minutes in one.
PYTEST = $(BIN)/python -m pytest -q -n 2 --dist loadfile

## Install what the tests need (dcmtk, the real Orthanc, Chromium for the UI tests, from Debian) and run the suite.
test: $(STAMP) system-deps
	$(BIN)/ruff check server tests bench
	$(BIN)/mypy
	$(BIN)/python -m compileall -q -j 0 server >/dev/null
	$(PYTEST)
	ISENGARD_TEST_INDEX=postgresql $(PYTEST) $(POSTGRESQL_TESTS)

system-deps:
	@if ! command -v storescu >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v gdcmconv >/dev/null || ! test -x /usr/sbin/Orthanc || ! ls /usr/lib/orthanc/libOrthancPython* >/dev/null 2>&1 \
		|| ! test -e /usr/share/orthanc/plugins/libOrthancGdcm.so \
		|| ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v strace >/dev/null; then \
		echo "Installing dcmtk, libgdcm-tools, orthanc, orthanc-python, orthanc-gdcm, postgresql, chromium, chromium-driver and strace from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk libgdcm-tools orthanc orthanc-python orthanc-gdcm postgresql \
			chromium chromium-driver strace >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check server tests bench
	$(BIN)/mypy

## Run Orthanc's own integration suite (a checkout of orthanc-tests with its runner, given as
## ORTHANC_SUITE=path) against the working tree and print the per-area table against Orthanc
## 1.10.1's results. Not part of `make test`: a clone does not carry the suite.
ORTHANC_SUITE ?=
COMPAT_RESULTS ?= $(CURDIR)/.compat/results.txt
compat: $(STAMP)
	@if [ -z "$(ORTHANC_SUITE)" ] || [ ! -x "$(ORTHANC_SUITE)/run-orthanc-tests.sh" ]; then \
		echo "make compat: give the suite's folder, e.g. make compat ORTHANC_SUITE=path/to/orthanc-suite: nothing to run"; \
		exit 0; \
	fi; \
	mkdir -p $(dir $(COMPAT_RESULTS)); \
	SUT_CMD="cd $(CURDIR) && exec $(CURDIR)/$(BIN)/python -m server" ACC_RESULTS=$(COMPAT_RESULTS) \
		$(ORTHANC_SUITE)/run-orthanc-tests.sh $(COMPAT_TESTS) || true; \
	python3 $(ORTHANC_SUITE)/compare.py --diff $(ORTHANC_SUITE)/results-orthanc-1.10.1.txt $(COMPAT_RESULTS)

## Every benchmark against the real Orthanc, one after the other (see bench/README.md); each
## prints its table of ratios. BENCH_SCALE instances for the scale run (~25 min at 200,000).
BENCH_SCALE ?= 200000
## Every script's scratch folder is kept until the last one ends (bench/scratch.py says why).
bench: $(STAMP) system-deps
	$(BIN)/python -m compileall -q -j 0 server >/dev/null
	status=0; scratch=$$(mktemp -d -t isengard-bench-XXXXXX); \
	trap 'rm -rf "$$scratch"' EXIT; trap 'exit 130' INT TERM; \
	export TMPDIR=$$scratch BENCH_KEEP_SCRATCH=1; \
	for script in run network jobs images modify find_orderby; do $(BIN)/python bench/$$script.py || status=1; done; \
	$(BIN)/python bench/scale.py --instances $(BENCH_SCALE) || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) OrthancStorage .pytest_cache .ruff_cache .mypy_cache .compat
