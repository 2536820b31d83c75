#!/usr/bin/env bash
# make run: start warden on its embedded defaults, deploy the examples, and
# print how to call them. The server stays in the foreground; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${WARDEN_DATA:-./warden-data}
bin/warden server --data "$DATA" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM

# Wait for the admin API (the token file appears on first start).
for _ in $(seq 1 100); do
  if [ -s "$DATA/admin.token" ] && bin/warden --data "$DATA" functions ls >/dev/null 2>&1; then break; fi
  if ! kill -0 $pid 2>/dev/null; then wait $pid; exit 1; fi
  sleep 0.1
done

# examples/secret-hmac signs with the secret SIGNING_KEY: create it once,
# from random bytes on stdin (secret values are never arguments).
if ! bin/warden --data "$DATA" secrets history SIGNING_KEY >/dev/null 2>&1; then
  head -c 32 /dev/urandom | base64 | bin/warden --data "$DATA" secrets set SIGNING_KEY --from-stdin
fi

# Deploys are signed. A development signing key lives in the data
# directory (made once, private key mode 0600); namespace default trusts it,
# so it enforces signatures, and the examples are signed before each deploy
# (their modules change with every build).
KEY="$DATA/dev-signing"
if [ ! -s "$KEY.key" ]; then
  bin/warden signing keygen --out "$KEY" >/dev/null
fi
if ! bin/warden --data "$DATA" trust ls default 2>/dev/null | grep -q "dev-signing"; then
  bin/warden --data "$DATA" trust add default --key "$KEY.pub" --name dev-signing
fi

# The built-in deploy policy asks a second person to approve new egress and
# secret grants; a fresh install has one operator, so namespace default gets
# the development policy (the built-in one without that rule; see
# docs/pipeline.md). `bin/warden policy rm default` restores the built-in one.
bin/warden --data "$DATA" policy set default scripts/dev-policy.rego >/dev/null

for m in examples/*/warden.yaml; do
  bin/warden sign -f "$m" --key "$KEY.key" >/dev/null
  bin/warden --data "$DATA" deploy -f "$m"
done

cat <<MSG

warden is running. Try:
  bin/warden invoke hello --path '/hello?name=you'
  bin/warden invoke echo-json --data '{"order": 42}'
  bin/warden invoke ping
  curl --cacert $DATA/tls/ca.pem 'https://127.0.0.1:8443/hello?name=you'
  curl --cacert $DATA/tls/ca.pem -X POST -d '{"order": 42}' https://127.0.0.1:8443/echo
  curl --cacert $DATA/tls/ca.pem https://127.0.0.1:8443/ping
  curl --cacert $DATA/tls/ca.pem -X POST -d 'sign me' https://127.0.0.1:8443/sign
  curl --cacert $DATA/tls/ca.pem -X POST https://127.0.0.1:8443/count/visits
  curl --cacert $DATA/tls/ca.pem https://127.0.0.1:8443/fetch
  bin/warden functions ls
  bin/warden secrets ls
  bin/warden kv ls counters
  bin/warden egress
  bin/warden access review secret-hmac
  bin/warden events --since 10m
  bin/warden trust ls
  bin/warden findings
  bin/warden sbom echo-json
Ctrl-C stops the server (in-flight invocations finish first).
MSG
wait $pid
