#!/usr/bin/env bash
# A rolling deploy from the Effect 3 line to the Effect 4 line: examples/server.ts of each line (v3 on this machine's
# Node, v4 on Node 22) on one database and one table, and one client whose requests alternate between them, as a
# load balancer would send them while instances are replaced. The session must carry across both ways: the visit
# count, a login made on one line read on the other, the rotated-away key read-only on both, a logout on either.
set -euo pipefail
cd "$(dirname "$0")/.."
db="rolling_deploy_$$"
admin="postgres://postgres@127.0.0.1:5432/postgres"
url="postgres://postgres@127.0.0.1:5432/$db"
node22_bin="$(bash .ci/node22.sh)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db" >/dev/null
}
trap cleanup EXIT
psql "$admin" -qc "CREATE DATABASE $db" >/dev/null

# Each server in a process group of its own (setsid), so that the cleanup ends node and not only npx.
DATABASE_URL="$url" PORT=3811 setsid npx tsx examples/server.ts > "${TMPDIR:-/tmp}/rolling-v3.log" 2>&1 & pids+=($!)
(cd v4 && DATABASE_URL="$url" PORT=3812 PATH="$node22_bin:$PATH" exec setsid npx tsx examples/server.ts > "${TMPDIR:-/tmp}/rolling-v4.log" 2>&1) & pids+=($!)
up() { curl -s -o /dev/null "http://127.0.0.1:$1/" -H 'cookie: x=1'; }
for port in 3811 3812; do
  for _ in $(seq 1 120); do up "$port" && break; sleep 0.5; done
  if ! up "$port"; then
    echo "FAILED: the server on port $port did not start; its log:"
    cat "${TMPDIR:-/tmp}/rolling-v3.log" "${TMPDIR:-/tmp}/rolling-v4.log"
    exit 1
  fi
done

v3=http://127.0.0.1:3811
v4=http://127.0.0.1:3812
jar=""
body=""
# One request with the kept cookie: sets `body`, and keeps the session cookie the server sets (as a browser would).
req() { # method url
  local headers set
  headers="$(mktemp)"
  body="$(curl -s -X "$1" -D "$headers" ${jar:+-H "cookie: $jar"} "$2")"
  set="$(grep -i '^set-cookie: __Host-session=' "$headers" | head -1 | sed -E 's/^[Ss]et-[Cc]ookie: ([^;]*).*/\1/' || true)"
  if [ -n "$set" ]; then jar="$set"; fi
  rm -f "$headers"
}
expect() { # actual expected what
  if [ "$1" != "$2" ]; then echo "FAILED: $3: got '$1', expected '$2'"; exit 1; fi
  echo "ok: $3"
}

req GET $v3/; expect "$body" "hello guest, visit 1" "a session begun on the Effect 3 line"
req GET $v4/; expect "$body" "hello guest, visit 2" "read and written on the Effect 4 line"
req GET $v3/; expect "$body" "hello guest, visit 3" "and back"
before="$jar"
req POST $v4/login/ada; expect "$body" "logged in" "a login (rotation) on the Effect 4 line"
test "$jar" != "$before"
req GET $v3/; expect "$body" "hello ada, visit 4" "the new key read on the Effect 3 line"
after="$jar"
jar="$before"
expect "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "cookie: $before" $v3/logout)" "409" "the rotated-away key is read-only on the Effect 3 line"
expect "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "cookie: $before" $v4/logout)" "409" "and on the Effect 4 line"
jar="$after"
req POST $v3/logout; expect "$body" "logged out" "a logout on the Effect 3 line"
req GET $v4/; expect "$body" "hello guest, visit 5" "seen on the Effect 4 line"
echo "rolling deploy: sessions carry across the two lines both ways"
