# modyard developer entry points. `make up` and `make test` work on a fresh machine:
# scripts/bootstrap.sh installs what is missing, `modyard dev infra up` starts what is not running.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= uv
RUN := $(UV) run --frozen

.PHONY: help env infra migrate up down test test-unit test-images images lint deps-check fmt bench screenshots

help:
	@echo "make up     - install, start infrastructure, migrate, run the services and the backoffice (Ctrl-C stops)"
	@echo "              (make up WITH=prometheus: and a Prometheus on 127.0.0.1:9090 with the alert rules)"
	@echo "make down   - stop the infrastructure that 'make up'/'make test' started"
	@echo "make test   - the whole test suite against real PostgreSQL and RabbitMQ"
	@echo "make images - every image from Debian's packages, no Docker Hub (scripts/images.sh)"
	@echo "make test-images - build the images, run the compose stack and the k8s manifests' containers"
	@echo "make lint   - ruff + mypy --strict + import contracts (.importlinter) + deps-check"
	@echo "make deps-check - each workspace member declares what it imports (deptry + first-party)"
	@echo "make fmt    - format the code"
	@echo "make bench  - benchmarks, one JSON line each (ONLY=\"runtime gateway\" for some)"
	@echo "make screenshots - a PNG of each backoffice screen under docs/screenshots/ (Chromium)"

env:
	@bash scripts/bootstrap.sh
	@$(UV) sync --frozen --all-packages --quiet

# WITH=prometheus also starts a local Prometheus scraping every service (deploy/monitoring's alerts).
infra: env
	@$(RUN) modyard dev infra up $(if $(WITH),--with $(WITH))

migrate: infra
	@$(RUN) modyard dev migrate

up: migrate
	@$(RUN) modyard dev run

down:
	@$(RUN) modyard dev infra down

test: infra
	@$(RUN) pytest -m "not images"

# Base images from Debian's packages (cached under ~/.cache/modyard/images), then the services'.
images: infra
	@bash scripts/images.sh

# Slow (builds every image): a step of its own in .ci/run.
test-images: infra
	@$(RUN) pytest -m images tests/test_images_compose.py

lint: env
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy libs/*/src services/*/src benchmarks
	@$(RUN) lint-imports
	@$(MAKE) --no-print-directory deps-check

# Each member's imports against its own [project].dependencies (scripts/deps_check.py says how).
deps-check: env
	@$(RUN) python scripts/deps_check.py

fmt: env
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

bench: infra
	@$(RUN) python -m benchmarks $(ONLY)

screenshots: infra
	@$(RUN) python services/backoffice/screenshots.py
