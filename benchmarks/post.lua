-- wrk script: POST a JSON body; BODY and the keys come from the environment.
-- BENCH_AUTHS is a comma list of API keys: with one key every request carries it (a static request,
-- wrk's fastest path); with several, each thread cycles through them request by request, so the load
-- is spread evenly over as many accounts.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}],"max_tokens":32}'
wrk.headers["Content-Type"] = "application/json"

local auths = {}
for key in string.gmatch(os.getenv("BENCH_AUTHS") or "", "[^,]+") do auths[#auths + 1] = key end

if #auths == 1 then wrk.headers["Authorization"] = "Bearer " .. auths[1] end

if #auths > 1 then
  local requests, next_index = {}, 1

  function init(args)
    for i, key in ipairs(auths) do
      local headers = {["Authorization"] = "Bearer " .. key}
      for name, value in pairs(wrk.headers) do headers[name] = value end
      requests[i] = wrk.format(nil, nil, headers)
    end
    -- Threads start at different keys so that they do not move in step.
    next_index = math.random(#requests)
  end

  function request()
    local req = requests[next_index]
    next_index = next_index % #requests + 1
    return req
  end
end

function done(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, \"non2xx\": %d, \"p50_us\": %d, \"p99_us\": %d, \"mean_us\": %.1f}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency.mean))
end
