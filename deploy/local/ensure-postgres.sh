#!/usr/bin/env bash
# PostgreSQL server binaries from Debian's packages. Idempotent: does nothing when a server binary is present.
# The tests start their own throwaway cluster on a free port, so the packaged service is kept from starting.
set -euo pipefail

have_server() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; }

if have_server; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "PostgreSQL server binaries are missing; install them as root: apt-get install -y postgresql" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d answering 101 stops maintainer scripts from starting the packaged cluster's service.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

echo "installing PostgreSQL server binaries from Debian packages..." >&2
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends postgresql >/dev/null

if ! have_server; then
    echo "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/postgres appeared" >&2
    exit 1
fi
