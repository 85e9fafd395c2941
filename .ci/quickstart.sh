#!/usr/bin/env bash
# The README's quick start on a fresh clone, as a newcomer runs it: `make run`, then the block
# between the quickstart markers in README.md run verbatim (issue_api_key --create-user, the first
# curl, the transactions list). Passes when that curl answers 200 from the demo provider and its
# charge is in the transactions list; also runs examples/curl.sh (must pass, and fail on a bad key).
#
#   bash .ci/quickstart.sh            # clones HEAD of this checkout into a temp dir
#   QUICKSTART_VENV=/path/.venv ...   # reuse an installed venv (no pip run) instead of a new one
#
# The clone sees none of the caller's DATABASE_URL/REDIS_URL/...: it runs on the embedded default.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -- "-$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "QUICKSTART FAILED: $*" >&2; [ -f "$WORK/server.log" ] && tail -n 40 "$WORK/server.log" >&2; exit 1; }

git clone -q "$SRC" "$WORK/clone"
# Uncommitted work is part of what is being checked (a local run before committing).
(cd "$SRC" && git diff HEAD --binary) >"$WORK/local.patch"
if [ -s "$WORK/local.patch" ]; then (cd "$WORK/clone" && git apply "$WORK/local.patch"); fi
cd "$WORK/clone"
if [ -n "${QUICKSTART_VENV:-}" ]; then
  ln -s "$QUICKSTART_VENV" .venv
  # The venv is installed already: make must not pip into it (its marker predates this clone).
  touch -d '2000-01-01' requirements.txt requirements-dev.txt
  [ -e .venv/.installed ] || fail "QUICKSTART_VENV has no .installed marker: install it with make first"
fi

clean_env=(env -i "PATH=$PATH" "HOME=${HOME:-/root}" "LANG=C.UTF-8")
# README: "PORT=9000 make run serves another port".
setsid "${clean_env[@]}" PORT="$PORT" make run >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || fail "make run exited"
  sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || fail "make run did not serve on $PORT"

# The README's block, verbatim but for the port.
awk '/<!-- quickstart:begin/{on=1; next} /<!-- quickstart:end/{on=0} on && !/^```/' README.md \
  | sed "s/127\.0\.0\.1:8000/127.0.0.1:$PORT/g" >"$WORK/block.sh"
grep -q "issue_api_key alice --create-user" "$WORK/block.sh" || fail "no quickstart block in README.md"
"${clean_env[@]}" bash -eu "$WORK/block.sh" >"$WORK/out.txt" 2>"$WORK/err.txt" || fail "the README block failed: $(cat "$WORK/err.txt")"

"${clean_env[@]}" .venv/bin/python - "$WORK/out.txt" <<'PY' || fail "the README's calls did not answer as documented: $(cat "$WORK/out.txt")"
import json, sys
from decimal import Decimal

text = open(sys.argv[1]).read()
decoder, docs, i = json.JSONDecoder(parse_float=Decimal), [], 0
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    doc, i = decoder.raw_decode(text, i)
    docs.append(doc)
assert len(docs) == 2, f"expected the completion and the transactions list, got {len(docs)} documents"
completion, transactions = docs
assert "error" not in completion, completion
assert completion["provider"] == "demo", completion
assert completion["choices"][0]["message"]["content"].startswith("Demo answer:"), completion
charged = Decimal(completion["usage"]["credits"])
assert charged > 0, "the demo bills at catalog prices"
kinds = [(t["kind"], Decimal(t["credits"])) for t in transactions]
assert kinds[0] == ("usage", -charged), kinds
assert kinds[-1][0] == "adjustment" and kinds[-1][1] > 0, kinds  # the starter credits
print(f"quickstart: 200 from demo, {charged} credits charged, in /api/credits/transactions: {kinds}")
PY
cat "$WORK/out.txt" | tail -c 300; echo

# examples/curl.sh with the README's base URL (with /v1): passes, and a bad key makes it fail.
KEY="$("${clean_env[@]}" .venv/bin/python manage.py issue_api_key bob --create-user 2>/dev/null | tail -n 1)"
"${clean_env[@]}" SMARTSPEC_API_KEY="$KEY" SMARTSPEC_BASE_URL="http://127.0.0.1:$PORT/v1" \
  bash examples/curl.sh >"$WORK/curl.txt" 2>&1 || fail "examples/curl.sh failed: $(tail -c 600 "$WORK/curl.txt")"
if "${clean_env[@]}" SMARTSPEC_API_KEY="sk-ss-not-a-key" SMARTSPEC_BASE_URL="http://127.0.0.1:$PORT/v1" \
  bash examples/curl.sh >"$WORK/curl-bad.txt" 2>&1; then
  fail "examples/curl.sh exited 0 although its calls failed"
fi
grep -q "invalid_api_key" "$WORK/curl-bad.txt" || fail "examples/curl.sh did not show the error body"
echo "quickstart: OK (make run on port $PORT, README block, examples/curl.sh)"
