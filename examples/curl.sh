#!/usr/bin/env bash
# The gateway with curl: a completion, a stream, the native call, the model list.
#   SMARTSPEC_API_KEY=sk-ss-... bash examples/curl.sh
# SMARTSPEC_BASE_URL is the OpenAI-style base URL, with /v1 (default http://127.0.0.1:8000/v1), as
# for the SDK scripts. Every call must answer 2xx: the first that does not stops the script with
# its error body and a non-zero exit.
set -euo pipefail
BASE="${SMARTSPEC_BASE_URL:-http://127.0.0.1:8000/v1}"
BASE="${BASE%/}"
case "$BASE" in
  */v1) ROOT="${BASE%/v1}" ;;
  *) echo "SMARTSPEC_BASE_URL must end in /v1 (e.g. http://127.0.0.1:8000/v1), got $BASE" >&2; exit 2 ;;
esac
AUTH="Authorization: Bearer ${SMARTSPEC_API_KEY:?set SMARTSPEC_API_KEY}"

# --fail-with-body: print the gateway's JSON error and exit 22 on any 4xx/5xx.
call() { curl -sS --fail-with-body "$@"; echo; }

call "$BASE/chat/completions" -H "$AUTH" -H "Content-Type: application/json" \
  -d '{"model": "anthropic/claude-sonnet-4.6", "messages": [{"role": "user", "content": "Hello"}],
       "fallback_models": ["openai/gpt-4o"], "provider": {"zdr": true}}'
call -N "$BASE/chat/completions" -H "$AUTH" -H "Content-Type: application/json" \
  -d '{"messages": [{"role": "user", "content": "Count to five"}], "task_type": "simple",
       "stream": true, "stream_options": {"include_usage": true}}'
call "$ROOT/api/llm/chat" -H "$AUTH" -H "Content-Type: application/json" \
  -d '{"messages": [{"role": "user", "content": "Compare REST and gRPC"}], "task_type": "analysis",
       "budget_priority": "quality", "max_tokens": 300}'
models="$(curl -sS --fail-with-body "$BASE/models" -H "$AUTH")"
printf '%s\n' "${models:0:400}"
