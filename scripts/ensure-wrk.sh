#!/usr/bin/env bash
# ensure-wrk.sh: make sure wrk (the HTTP load generator `make bench` drives)
# is installed, from the distribution's own package. A no-op when wrk is
# already on PATH. Runs unattended (no stdin, CI=true): as root it installs
# directly, otherwise through sudo -n, and it refreshes the package lists
# only when the package is not found in them.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo -n"
else
  echo "ensure-wrk: wrk is missing and this user cannot install packages; install the 'wrk' package" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-wrk: wrk is missing and apt-get is not available; install wrk with this system's package manager" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Only refresh the lists when they do not know the package yet.
if ! apt-cache show wrk >/dev/null 2>&1; then
  $SUDO apt-get update -q </dev/null
fi
$SUDO apt-get install -y -q --no-install-recommends wrk </dev/null
command -v wrk >/dev/null 2>&1 || { echo "ensure-wrk: wrk still not on PATH after install" >&2; exit 1; }
echo "ensure-wrk: installed $(wrk --version 2>&1 | head -n1)"
