# The checks of .ci/run, one target a step. .ci/run makes a clean virtualenv from the lock file and
# calls these targets with it (make VENV=...), so CI and a developer run the same commands.
# Locally, with a virtualenv of `pip install -e '.[test,lint]'` in .venv: `make check` (all but the
# image), or one target.

VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: check lint format-check typecheck imports hadolint test image

check: lint format-check typecheck imports hadolint test

lint:
	$(BIN)/ruff check .

format-check:
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy notifier tests benchmarks

# The layers point down and the core stays pure (the contracts in pyproject.toml).
imports:
	$(BIN)/lint-imports

hadolint:
	$(BIN)/hadolint Dockerfile

# pytest exits 5 when it collected nothing: a filter or a conftest gone wrong, never a pass.
test:
	$(BIN)/pytest -p no:cacheprovider -rs -n auto $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

# Builds the Dockerfile with buildah and runs the image (root: see .ci/image).
image:
	bash .ci/image
