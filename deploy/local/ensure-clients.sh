#!/usr/bin/env bash
# What the real-client tests drive: the npm SDK packages of tests/clients (exactly as locked) and Debian's
# chromium for the browser test. Idempotent: npm ci runs only when the lock file changed, from npm's own cache
# when it can; chromium is installed only when missing.
set -euo pipefail

clients=${1:-tests/clients}
stamp="$clients/node_modules/.tapwire-installed"

if ! command -v npm >/dev/null; then
    echo "npm is missing; install Node.js (Debian: apt-get install -y nodejs npm)" >&2
    exit 1
fi
if [[ ! -e $stamp || $clients/package-lock.json -nt $stamp ]]; then
    echo "installing the SDK packages of $clients (npm ci)..." >&2
    (cd "$clients" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
    touch "$stamp"
fi

if ! command -v chromium >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "chromium is missing; install it as root: apt-get install -y chromium" >&2
        exit 1
    fi
    echo "installing chromium from Debian packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
fi
