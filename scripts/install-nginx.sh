#!/usr/bin/env bash
# Installs Debian's nginx (apt, as root, only when it is missing): the load balancer in front
# of the replicas in tests/test_replicas_nginx.py and `make replicas`. Those run it as a child
# process with a temporary prefix, never as the system's service: the package's own service
# is neither needed nor started by this script.
set -euo pipefail

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-nginx: nginx is missing and installing it needs root" >&2
        exit 1
    fi
    echo "install-nginx: installing Debian's nginx"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nginx >/dev/null
    # Where the package started its service (a machine with systemd), stop it: port 80 is
    # not this project's to take.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
        systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
fi

PATH="$PATH:/usr/sbin" nginx -v
