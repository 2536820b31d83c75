#!/usr/bin/env bash
# tls-scan: build warden, start it on a throwaway data dir, scan both TLS
# listeners with testssl.sh (trusting warden's own CA), stop it again.
#
#   scripts/tls-scan.sh [PUBLIC_PORT [ADMIN_PORT]]     (defaults 19443 19444)
#
# Exit status: 0 no finding at MEDIUM or above; 1 at least one such finding
# remains; 2 the scan could not run (install, build, start or testssl failed).
# Findings about trust in warden's private CA are ignored: cert_chain_of_trust
# and cert_trust, and cert_revocation (the generated 90-day certificate names
# no CRL or OCSP responder: nothing checks revocation of a private CA's leaf
# that clients pin through ca.pem; a certificate from a public CA given with
# --tls-cert carries its CA's). TLS_SCAN_IGNORE adds ids (comma separated,
# matched as prefixes).
# TLS_SCAN_OUT=DIR keeps the testssl JSON and logs there; otherwise everything
# lives in a temporary directory removed on exit. TLS_SCAN_FAST=1 passes
# --fast to testssl (fewer cipher checks, about 20 s quicker).
#
# Only 127.0.0.1 is contacted. The server log holds the bootstrap admin token
# of the throwaway data dir; it is removed with it.
set -euo pipefail

PUBLIC_PORT=${1:-19443}
ADMIN_PORT=${2:-19444}
IGNORE="cert_chain_of_trust,cert_trust,cert_revocation${TLS_SCAN_IGNORE:+,$TLS_SCAN_IGNORE}"

cd "$(dirname "$0")/.."
root=$PWD

die() { echo "tls-scan: $*" >&2; exit 2; }

for p in "$PUBLIC_PORT" "$ADMIN_PORT"; do
  [[ $p =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "bad port: $p"
done
[[ $PUBLIC_PORT != "$ADMIN_PORT" ]] || die "the two ports must differ"

# --- tools -------------------------------------------------------------------
# Debian's testssl.sh package installs the command as "testssl".
find_testssl() { command -v testssl || command -v testssl.sh || true; }
apt_install() {
  [[ $(id -u) == 0 ]] || die "$* missing and not root: apt-get install -y $*"
  if ! apt-cache policy "$@" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    timeout 300 apt-get update -q >/dev/null || die "apt-get update failed"
  fi
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q "$@" >/dev/null ||
    die "apt-get install $* failed"
}
TESTSSL=$(find_testssl)
if [[ -z $TESTSSL ]]; then
  apt_install testssl.sh
  TESTSSL=$(find_testssl)
  [[ -n $TESTSSL ]] || die "testssl.sh installed but no testssl command found"
fi
for tool in jq curl; do
  command -v "$tool" >/dev/null || apt_install "$tool"
done
command -v go >/dev/null || die "go not found"

# --- work dir, cleanup ---------------------------------------------------------
work=$(mktemp -d /tmp/warden-tls-scan.XXXXXX)
out=${TLS_SCAN_OUT:-$work}
mkdir -p "$out"
server_pid=
cleanup() {
  local rc=$?
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do # 10 s for a graceful drain
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "tls-scan: server did not stop in 10 s, killing it" >&2
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build, start ------------------------------------------------------------
echo "tls-scan: building warden"
timeout 600 go build -o "$work/warden" ./cmd/warden || die "build failed"

port_busy() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
for p in "$PUBLIC_PORT" "$ADMIN_PORT"; do
  ! port_busy "$p" || die "127.0.0.1:$p is already in use"
done

data=$work/data
"$work/warden" server --data "$data" \
  --listen "127.0.0.1:$PUBLIC_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
  >"$work/server.log" 2>&1 &
server_pid=$!
ca=$data/tls/ca.pem

# Ready when both listeners answer with a certificate from this server's CA
# (so a stray process on the port cannot pass), at most 30 s.
ready=
for _ in $(seq 1 150); do
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "server exited"; }
  if [[ -s $ca ]] &&
    curl -s -o /dev/null --max-time 2 --cacert "$ca" "https://127.0.0.1:$PUBLIC_PORT/" &&
    curl -s -o /dev/null --max-time 2 --cacert "$ca" "https://127.0.0.1:$ADMIN_PORT/"; then
    ready=1
    break
  fi
  sleep 0.2
done
[[ -n $ready ]] || die "server not ready after 30 s"

# --- scan ----------------------------------------------------------------------
version=$("$TESTSSL" --version 2>/dev/null | sed -n 's/.*testssl[^0-9]*\([0-9][0-9.a-z-]*\).*/\1/p' | head -1)
opts=(--quiet --color 0 --warnings off --add-ca "$ca"
  --connect-timeout 5 --openssl-timeout 10 --severity LOW)
[[ ${TLS_SCAN_FAST:-0} == 1 ]] && opts+=(--fast)
echo "tls-scan: testssl $version: $TESTSSL ${opts[*]} --jsonfile-pretty FILE 127.0.0.1:PORT"

declare -A scan_pid
for name in public admin; do
  port=$PUBLIC_PORT
  [[ $name == admin ]] && port=$ADMIN_PORT
  rm -f "$out/$name.json" "$out/$name.log"
  timeout 900 "$TESTSSL" "${opts[@]}" --jsonfile-pretty "$out/$name.json" \
    "127.0.0.1:$port" >"$out/$name.log" 2>&1 &
  scan_pid[$name]=$!
done
failed=
for name in public admin; do
  rc=0
  wait "${scan_pid[$name]}" || rc=$?
  # testssl 3.0 exits 0 when it finished; 242-255 are its own fatal errors,
  # 124 is the timeout above.
  if ((rc == 124 || rc >= 242)) || ! jq -e '.scanResult | length > 0' "$out/$name.json" >/dev/null 2>&1; then
    echo "tls-scan: testssl on $name failed (exit $rc):" >&2
    tail -20 "$out/$name.log" >&2
    failed=1
  fi
done
[[ -z $failed ]] || die "scan incomplete"

# --- verdict -------------------------------------------------------------------
# Every finding is an object with id, severity and finding wherever it sits.
findings() {
  jq -r --arg ignore "$IGNORE" '
    ($ignore | split(",") | map(select(length > 0))) as $ign
    | [.. | objects | select(has("id") and has("severity") and has("finding"))]
    | .[]
    | select(.id as $id | $ign | any(. as $p | $id | startswith($p)) | not)
    | [.severity, .id, .finding] | @tsv' "$1"
}
bad=0
for name in public admin; do
  port=$PUBLIC_PORT
  [[ $name == admin ]] && port=$ADMIN_PORT
  echo "== $name 127.0.0.1:$port"
  all=$(findings "$out/$name.json")
  high=$(awk -F'\t' '$1 ~ /^(MEDIUM|HIGH|CRITICAL)$/' <<<"$all")
  rest=$(awk -F'\t' '$1 !~ /^(MEDIUM|HIGH|CRITICAL)$/' <<<"$all")
  if [[ -n $high ]]; then
    bad=1
    sed 's/^/  /' <<<"$high"
  else
    echo "  no finding at MEDIUM or above"
  fi
  [[ -z $rest ]] || sed 's/^/  (note) /' <<<"$rest"
done
[[ -n ${TLS_SCAN_OUT:-} ]] && echo "tls-scan: JSON and logs in $out"
if ((bad)); then
  echo "tls-scan: FAIL: findings at MEDIUM or above (ignored: $IGNORE)"
  exit 1
fi
echo "tls-scan: OK (ignored: $IGNORE)"
