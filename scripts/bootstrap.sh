#!/usr/bin/env bash
# Install what modyard's local development and CI need and this machine lacks.
#
# Idempotent and quick when everything is present (only file checks, no network). It installs
# packages but never starts a daemon: `modyard dev infra up` starts what it needs under .run/.
#
#   Debian packages: rabbitmq-server docker.io docker-registry apache2-utils busybox-static
#                    chromium (the backoffice's browser tests and `make screenshots`)
#                    mmdebstrap (`make images`: Debian root filesystems for the base images)
#                    prometheus (promtool: `make test` unit-tests the alert rules; and the
#                    optional local Prometheus of `modyard dev infra up --with prometheus`)
#                    (+ postgresql when no PostgreSQL server binaries are found)
#   Python tool:     uv (via pip --user when it is not on PATH)
#   uv tool:         checkov (its own environment: its pins would downgrade the workspace's)
set -euo pipefail

log() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

has_pg_server() {
    command -v initdb >/dev/null 2>&1 && return 0
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && return 0
    done
    return 1
}

has_static_busybox() {
    # busybox-static is what container images are built from; a dynamic busybox would not run
    # in an empty image.
    if command -v dpkg-query >/dev/null 2>&1; then
        [[ "$(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null)" == installed ]]
    else
        command -v busybox >/dev/null 2>&1
    fi
}

missing_packages() {
    local packages=()
    [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || packages+=(rabbitmq-server)
    command -v dockerd >/dev/null 2>&1 || [[ -x /usr/sbin/dockerd ]] || packages+=(docker.io)
    command -v docker-registry >/dev/null 2>&1 || packages+=(docker-registry)
    command -v htpasswd >/dev/null 2>&1 || packages+=(apache2-utils)
    has_static_busybox || packages+=(busybox-static)
    # Playwright drives Debian's Chromium; it never downloads a browser of its own.
    [[ -x /usr/bin/chromium ]] || packages+=(chromium)
    # `make images` builds its base images from Debian packages, never from Docker Hub.
    command -v mmdebstrap >/dev/null 2>&1 || packages+=(mmdebstrap)
    # deploy/monitoring's alert rules are unit-tested with promtool (Debian's prometheus).
    command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
    has_pg_server || packages+=(postgresql)
    if [[ "${#packages[@]}" -gt 0 ]]; then printf '%s\n' "${packages[@]}"; fi
}

# PIDs of the daemons a package's maintainer scripts might start, one per line. Only this
# machine's own: a container's PostgreSQL or RabbitMQ (another PID namespace) started meanwhile,
# by a test for instance, is none of the install's doing.
daemon_pids() {
    local dir comm own_ns
    own_ns=$(readlink /proc/self/ns/pid 2>/dev/null || true)
    for dir in /proc/[0-9]*; do
        comm=$(cat "$dir/comm" 2>/dev/null) || continue
        [[ "$(readlink "$dir/ns/pid" 2>/dev/null || true)" == "$own_ns" ]] || continue
        case "$comm" in
            epmd | beam.smp | rabbitmq-server | dockerd | containerd | docker-registry | postgres | prometheus)
                printf '%s\n' "${dir#/proc/}" ;;
        esac
    done
}

install_packages() {
    local packages=("$@")
    if [[ "$(id -u)" -ne 0 ]]; then
        die "missing packages: ${packages[*]}
    install them as root, e.g.:
    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages[*]}"
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing ${packages[*]} and no apt-get to install them"

    # Debian's maintainer scripts start services through invoke-rc.d; policy-rc.d exit code 101
    # forbids that. An existing policy (common in containers) is left untouched.
    local policy=/usr/sbin/policy-rc.d created_policy=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\n# Temporary, from modyard scripts/bootstrap.sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    local before
    before=$(daemon_pids | sort)

    log "installing ${packages[*]}"
    local status=0
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${packages[@]}"
    } || status=$?

    [[ -n "$created_policy" ]] && rm -f "$policy"

    # Belt and braces: stop any daemon that appeared during the install (by PID, only those).
    # A new process whose parent ran before the install is not a daemon the install started: it
    # is a worker of a running one (a PostgreSQL backend serving a new connection).
    local pid parent
    for pid in $(comm -13 <(printf '%s\n' "$before") <(daemon_pids | sort)); do
        parent=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
        grep -qx "$parent" <<<"$before" && continue
        log "stopping $(cat "/proc/$pid/comm" 2>/dev/null || echo process) (pid $pid) started by the package install"
        kill -TERM "$pid" 2>/dev/null || true
    done

    [[ "$status" -eq 0 ]] || die "apt-get install ${packages[*]} failed (exit $status)"
}

ensure_uv() {
    command -v uv >/dev/null 2>&1 && return 0
    if [[ -x "$HOME/.local/bin/uv" ]]; then
        log "uv is in ~/.local/bin; add it to PATH (the Makefile and .ci/run do)"
        return 0
    fi
    log "installing uv with pip --user"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1 ||
            die "uv is missing and python3 has no pip; install uv (https://docs.astral.sh/uv/)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip
    fi
    # Debian's own python3 refuses user installs without --break-system-packages (PEP 668);
    # uv is self-contained, so a user install of it cannot break the system's packages.
    python3 -m pip install --user --quiet uv ||
        python3 -m pip install --user --quiet --break-system-packages uv ||
        die "pip could not install uv"
    command -v uv >/dev/null 2>&1 || log "uv installed in ~/.local/bin; add it to PATH"
}

# checkov, for tests/test_deploy_tools.py: a uv tool (its own virtual environment, in uv's tool
# bin directory, ~/.local/bin by default) rather than a dev dependency, because it pins packaging
# and others lower than the workspace uses. Pinned; reinstalled only when the version differs.
CHECKOV_VERSION=3.3.30

ensure_checkov() {
    local uv_bin
    uv_bin=$(command -v uv || echo "$HOME/.local/bin/uv")
    [[ -x "$uv_bin" ]] || die "uv is missing: cannot install checkov"
    if "$uv_bin" tool list 2>/dev/null | grep -qx "checkov v$CHECKOV_VERSION" &&
        [[ -x "$("$uv_bin" tool dir --bin)/checkov" ]]; then
        return 0
    fi
    log "installing checkov $CHECKOV_VERSION with uv tool"
    "$uv_bin" tool install --quiet --force "checkov==$CHECKOV_VERSION" ||
        die "uv tool install checkov==$CHECKOV_VERSION failed"
}

main() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [[ "${#missing[@]}" -gt 0 ]]; then
        install_packages "${missing[@]}"
    fi
    ensure_uv
    ensure_checkov
    log "ok (rabbitmq-server, dockerd, docker-registry, htpasswd, busybox-static, chromium, mmdebstrap, PostgreSQL, uv, checkov)"
}

# Sourcing (for testing single functions) defines them without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
