#!/usr/bin/env bash
# The gateway with curl: a completion, a stream, the native call, the model list.
#   SMARTSPEC_API_KEY=sk-ss-... bash examples/curl.sh
set -euo pipefail
BASE="${SMARTSPEC_BASE_URL:-http://127.0.0.1:8000}"
AUTH="Authorization: Bearer ${SMARTSPEC_API_KEY:?set SMARTSPEC_API_KEY}"

curl -sS "$BASE/v1/chat/completions" -H "$AUTH" -H "Content-Type: application/json" \
  -d '{"model": "anthropic/claude-3.5-sonnet", "messages": [{"role": "user", "content": "Hello"}],
       "fallback_models": ["openai/gpt-4o"], "provider": {"zdr": true}}'
echo
curl -sSN "$BASE/v1/chat/completions" -H "$AUTH" -H "Content-Type: application/json" \
  -d '{"messages": [{"role": "user", "content": "Count to five"}], "task_type": "simple",
       "stream": true, "stream_options": {"include_usage": true}}'
echo
curl -sS "$BASE/api/llm/chat" -H "$AUTH" -H "Content-Type: application/json" \
  -d '{"messages": [{"role": "user", "content": "Compare REST and gRPC"}], "task_type": "analysis",
       "budget_priority": "quality", "max_tokens": 300}'
echo
curl -sS "$BASE/v1/models" -H "$AUTH" | head -c 400
echo
