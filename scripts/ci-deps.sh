#!/usr/bin/env bash
# Install the Debian packages the real-peer tests need (tests/peers/):
#   containerd       containerd 1.6.20 + ctr            (tests/peers/containerd.py)
#   docker-registry  distribution registry 2.8          (tests/peers/registry.py)
#   skopeo           pushes the built test image         (tests/peers/images.py)
#   umoci            OCI layout tool, for image tests
#   postgresql       PostgreSQL 15 server binaries   (tests/peers/postgres.py; not on PATH,
#                    the fixture runs /usr/lib/postgresql/15/bin/{initdb,postgres} itself)
#   zsh, fish        the CLI's completion scripts are loaded in each (tests/cli/test_completion.py)
#   gcc (+ the Python headers when the python3.11 on PATH is Debian's: python3.11-dev)
#                    scripts/bootstrap compiles the engine's hot modules with mypyc; under CI
#                    tests/unit/test_compiled.py fails when the compiled variant is missing
# Idempotent: does nothing (no apt-get update) when every binary is already there;
# CI_DEPS_FORCE=1 runs the apt steps anyway.
# Non-interactive and quiet; fails loudly (non-zero exit, apt's log tail) on error.
# Services are never started by the install (policy-rc.d says no while it runs).
set -euo pipefail

# package:binary pairs; a package is installed if any of its binaries is missing.
NEEDS=(
    containerd:containerd
    containerd:ctr
    docker-registry:docker-registry
    skopeo:skopeo
    umoci:umoci
    postgresql:/usr/lib/postgresql/15/bin/initdb
    postgresql:/usr/lib/postgresql/15/bin/postgres
    zsh:zsh
    fish:fish
    gcc:gcc
)

missing=()
for pair in "${NEEDS[@]}"; do
    pkg=${pair%%:*}
    bin=${pair#*:}
    if ! command -v "$bin" >/dev/null 2>&1 && [[ " ${missing[*]-} " != *" $pkg "* ]]; then
        missing+=("$pkg")
    fi
done

# Python's headers, for the Python scripts/bootstrap picks (python3.11 first): pyenv's and
# python.org builds carry them; Debian's come in python3.X-dev.
py=$(command -v python3.11 || command -v python3 || true)
if [[ -n $py ]]; then
    include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    real=$(readlink -f "$py")
    if [[ ! -f $include/Python.h && $real == /usr/bin/python3.* ]]; then
        missing+=("$(basename "$real")-dev")
    fi
fi

if [[ ${CI_DEPS_FORCE:-0} == 1 ]]; then  # reinstall check, for testing this script
    missing=(containerd docker-registry skopeo umoci postgresql zsh fish gcc)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "ci-deps: all present (containerd, ctr, docker-registry, skopeo, umoci, postgresql, zsh, fish, gcc)"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "ci-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/ci-deps.XXXXXX.log)

# Keep package scripts from starting daemons (docker-registry ships an init script).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
cleanup() {
    if [[ $made_policy -eq 1 ]]; then rm -f "$policy"; fi
}
trap cleanup EXIT

fail() {
    echo "ci-deps: $1 failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
}

echo "ci-deps: installing ${missing[*]}"
apt-get update -qq >>"$log" 2>&1 || fail "apt-get update"
apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >>"$log" 2>&1 || fail "apt-get install ${missing[*]}"

for bin in containerd ctr docker-registry skopeo umoci zsh fish gcc \
    /usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/15/bin/postgres; do
    command -v "$bin" >/dev/null 2>&1 || fail "finding $bin after install"
done
echo "ci-deps: installed ${missing[*]}"
rm -f "$log"
