#!/usr/bin/env bash
# The container test (run by .ci/run): builds contrib/docker/Dockerfile for real, with the
# classic builder, from base images made locally, then runs tests/container.rs against the
# image (start, hello_ok over a published port, the health check failing on a frozen
# gateway, the non-root uid, `docker stop` within 5 s, the spool surviving `docker rm`,
# `--bind lan` without auth, the compose sidecar). Finally it prints the image sizes.
#
# On a fresh Debian machine it installs what it needs (docker.io, docker-compose,
# mmdebstrap), starts dockerd if none runs (and stops it at the end), and caches the base
# tarballs in $EMONK_CI_CACHE (default /var/cache/emonk-ci), keyed by what they contain.
# It is idempotent: a second run reuses the cached bases, images and the build cache.
#
# No registry is reachable here, so the bases are made with mmdebstrap and `docker import`:
#   runtime  Debian minbase, with the path excludes of Debian's slim images
#   build    Debian minbase + gcc + libc6-dev, this machine's Rust toolchain (Debian's cargo
#            is older than the locked crates need) and this machine's CA bundle (the crate
#            registry is reached through a TLS-inspecting proxy)
# The Dockerfile itself stays what a user with Docker Hub runs; only the build arguments
# differ.
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "$0")/../.."
repo=$PWD

suite=${EMONK_CI_SUITE:-bookworm}
cache=${EMONK_CI_CACHE:-/var/cache/emonk-ci}
image=${EMONK_CI_IMAGE:-emonk-ci/emonkd:test}
agent_image=${EMONK_CI_AGENT_IMAGE:-emonk-ci/agent:test}
export DOCKER_BUILDKIT=0 # the legacy builder: BuildKit is not packaged in Debian

say() { printf '== container test: %s\n' "$*"; }
fail() {
    printf 'FAIL container test: %s\n' "$*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || fail "$1 is missing and this is not root; install it or run as root"
}

install_missing() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
    if [ "${#missing[@]}" -gt 0 ]; then
        need_root "${missing[*]}"
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

# dockerd, started in the background unless one answers already; stopped at exit if we
# started it.
started_dockerd=
start_dockerd() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    need_root "a running dockerd"
    mkdir -p "$cache"
    say "starting dockerd (log: $cache/dockerd.log)"
    dockerd >"$cache/dockerd.log" 2>&1 &
    started_dockerd=$!
    local i
    for i in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then
            return
        fi
        kill -0 "$started_dockerd" 2>/dev/null || fail "dockerd exited; see $cache/dockerd.log"
        sleep 0.5
    done
    fail "dockerd did not answer within 30 s; see $cache/dockerd.log"
}

cleanup() {
    local rc=$?
    docker rm -f $(docker ps -aq --filter label=emonk-ci) >/dev/null 2>&1 || true
    docker volume rm $(docker volume ls -q --filter label=emonk-ci) >/dev/null 2>&1 || true
    if [ -n "$started_dockerd" ]; then
        say "stopping the dockerd this script started (pid $started_dockerd)"
        kill "$started_dockerd" 2>/dev/null || true
        wait "$started_dockerd" 2>/dev/null || true
    fi
    exit "$rc"
}

# Paths Debian's slim images exclude (docs, man pages, locales): what makes them slim.
slim_opts=(
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --aptopt='APT::Install-Recommends "false"'
)

std_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Merged /usr without the usrmerge package (which pulls in perl): as Debian's own images.
merged_usr=/usr/share/mmdebstrap/hooks/merged-usr

toolchain_dir() {
    local sysroot
    sysroot=$(rustc --print sysroot)
    [ -x "$sysroot/bin/cargo" ] || fail "no cargo next to rustc in $sysroot"
    printf '%s\n' "$sysroot"
}

# Make (or reuse) a base image: base_image NAME KEY_MATERIAL ENV [MMDEBSTRAP_ARGS...].
# ENV is the image's environment, space-separated K=V; the tag and the cached tarball are
# named by a hash of KEY_MATERIAL and ENV.
base_image() {
    local name=$1 material=$2 env=$3
    shift 3
    material="$material $env"
    local key tar tag
    key=$(printf '%s' "$material" | sha256sum | cut -c1-16)
    tar="$cache/$name-$key.tar"
    tag="emonk-ci/$name:$key"
    if docker image inspect "$tag" >/dev/null 2>&1; then
        say "base $tag: present" >&2
        printf '%s\n' "$tag"
        return
    fi
    if [ ! -s "$tar" ]; then
        say "base $tag: mmdebstrap $suite (cached as $tar)" >&2
        mkdir -p "$cache"
        mmdebstrap --quiet --format=tar --variant=minbase "${slim_opts[@]}" "$@" "$suite" "$tar.part" >&2
        mv "$tar.part" "$tar"
    fi
    say "base $tag: docker import" >&2
    local changes=(--change 'CMD ["/bin/bash"]') kv
    for kv in $env; do
        changes+=(--change "ENV $kv")
    done
    docker import "${changes[@]}" "$tar" "$tag" >/dev/null
    printf '%s\n' "$tag"
}

proxy_args=()
agent_base_tag=
main() {
    install_missing
    trap cleanup EXIT
    start_dockerd

    local recipe ca sysroot runtime build
    # Bump when the recipe below changes, so old cached tarballs are not reused.
    recipe=1
    runtime=$(base_image runtime "runtime $recipe $suite ${slim_opts[*]} $merged_usr" "PATH=$std_path" \
        --hook-dir="$merged_usr")

    ca=/etc/ssl/certs/ca-certificates.crt
    [ -s "$ca" ] || fail "no CA bundle at $ca (install ca-certificates)"
    sysroot=$(toolchain_dir)
    build=$(base_image build \
        "build $recipe $suite ${slim_opts[*]} gcc libc6-dev $(rustc -vV) $(cargo -V) $(sha256sum <"$ca")" \
        "PATH=/opt/rust/bin:$std_path" \
        --include=gcc,libc6-dev,ca-certificates \
        --customize-hook="mkdir -p \"\$1/opt/rust\" && tar -C '$sysroot' --exclude=./share -cf - . | tar -C \"\$1/opt/rust\" -xf -" \
        --customize-hook="cp '$ca' \"\$1/etc/ssl/certs/ca-certificates.crt\"")

    local v
    for v in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
        if [ -n "${!v:-}" ]; then
            proxy_args+=(--build-arg "$v=${!v}")
        fi
    done

    say "docker build -f contrib/docker/Dockerfile (classic builder)"
    local t0=$SECONDS
    docker build -f contrib/docker/Dockerfile \
        --build-arg "BUILD_IMAGE=$build" --build-arg "RUNTIME_IMAGE=$runtime" \
        "${proxy_args[@]}" -t "$image" .
    say "image built in $((SECONDS - t0)) s"

    say "tests/container.rs against $image"
    EMONK_CI_IMAGE=$image cargo test --test container -- --ignored --test-threads=1

    compose_sidecar "$runtime"
    sizes "$runtime"
}

# compose.yaml as a user runs it (from a copy of contrib/docker with its own config and
# secrets), checking that the agent sidecar reaches the gateway on 127.0.0.1:18789 and
# that `down` keeps the state volume.
compose_sidecar() {
    local runtime=$1 dir project agent_id code
    dir=$(mktemp -d)
    project="emonkci$$"
    cp contrib/docker/compose.yaml "$dir/"
    mkdir -m 0700 "$dir/secrets"
    head -c 32 /dev/urandom | base64 >"$dir/secrets/gateway_token"
    echo "unused-in-this-test" >"$dir/secrets/telegram_token"
    chown 10001:10001 "$dir"/secrets/*
    chmod 600 "$dir"/secrets/*
    # The README's config without Telegram: this test must not reach api.telegram.org.
    echo '{"gateway":{"auth":{"tokenFile":"/run/secrets/gateway_token"}}}' >"$dir/emonk.json"
    chmod 644 "$dir/emonk.json"
    local files=(-f "$dir/compose.yaml")
    if [ -f contrib/python/examples/echo_agent.py ]; then
        agent_base "$runtime"
        say "agent image from contrib/docker/agent.Dockerfile"
        docker build -f contrib/docker/agent.Dockerfile --build-arg "AGENT_IMAGE=$agent_base_tag" \
            "${proxy_args[@]}" -t "$agent_image" .
    else
        # Until the Python example agent exists, a stand-in in the agent's place: the same
        # network namespace and secret, one `emonkd call gateway.ping` to 127.0.0.1:18789.
        say "no contrib/python/examples/echo_agent.py yet: a stand-in agent (emonkd call)"
        cat >"$dir/standin.yaml" <<'YAML'
services:
  agent:
    image: ${EMONK_IMAGE}
    restart: "no"
    volumes:
      - ./emonk.json:/etc/emonk/emonk.json:ro
    entrypoint:
      - sh
      - -c
      - for i in $$(seq 100); do emonkd call gateway.ping --url ws://127.0.0.1:18789 && exit 0; sleep 0.1; done; exit 1
YAML
        files+=(-f "$dir/standin.yaml")
    fi
    local compose=(env EMONK_IMAGE="$image" EMONK_AGENT_IMAGE="$agent_image"
        docker-compose --project-name "$project" --project-directory "$dir" "${files[@]}")
    say "compose up (project $project)"
    "${compose[@]}" up -d --no-build
    trap '"${compose[@]}" down -v >/dev/null 2>&1 || true; cleanup' EXIT
    local ok=
    if [ -f "$dir/standin.yaml" ]; then
        agent_id=$("${compose[@]}" ps -q agent)
        code=$(timeout 60 docker wait "$agent_id")
        "${compose[@]}" logs agent
        [ "$code" = 0 ] && grep -q '"ts"' <("${compose[@]}" logs --no-color agent) && ok=1
    else
        # The real agent stays connected: the gateway counts it.
        local i
        for i in $(seq 1 100); do
            if "${compose[@]}" exec -T emonkd emonkd status --json | grep -q '"agents": 1'; then
                ok=1
                break
            fi
            sleep 0.3
        done
    fi
    "${compose[@]}" logs --no-color emonkd | grep -q 'listening on ws://127.0.0.1:18789' ||
        fail "compose: emonkd does not listen on its loopback default"
    [ -n "$ok" ] || {
        "${compose[@]}" logs --no-color
        fail "compose: the agent sidecar did not reach ws://127.0.0.1:18789"
    }
    say "compose: the agent sidecar reached the gateway on 127.0.0.1:18789"
    "${compose[@]}" down
    docker volume inspect "${project}_state" >/dev/null 2>&1 ||
        fail "compose down removed the state volume"
    "${compose[@]}" down -v
    trap cleanup EXIT
    rm -rf "$dir"
}

# Debian + python3 + venv for agent.Dockerfile; pip trusts this machine's CA bundle.
agent_base() {
    local runtime=$1 ca=/etc/ssl/certs/ca-certificates.crt
    agent_base_tag=$(base_image agent "agent 1 $suite ${slim_opts[*]} python3 $(sha256sum <"$ca")" \
        "PATH=$std_path PIP_CERT=$ca" \
        --hook-dir="$merged_usr" --include=python3,python3-venv,ca-certificates \
        --customize-hook="cp '$ca' \"\$1/etc/ssl/certs/ca-certificates.crt\"")
}

# What the image weighs, and what this project adds on top of the runtime base.
sizes() {
    local runtime=$1 total base
    total=$(docker image inspect -f '{{.Size}}' "$image")
    base=$(docker image inspect -f '{{.Size}}' "$runtime")
    say "image $image: $total bytes; runtime base: $base bytes; added: $((total - base)) bytes"
    docker history --format '{{.Size}}\t{{.CreatedBy}}' "$image" | head -n 12
}

main "$@"
