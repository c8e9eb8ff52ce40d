-- wrk script for bench/serve: POSTs one fixed inference request body on every
-- keep-alive connection and prints a JSON summary line (QPS inputs, error
-- counts, latency percentiles in microseconds) at the end. Error answers
-- (status >= 400) are counted by wrk itself (summary.errors.status): a Lua
-- response() hook would cost the load generator, which shares the server's
-- cores, a Lua call per request.
--
-- Environment: BODY_FILE (the request body, read once per wrk thread),
-- CONTENT_TYPE (default application/json), HEADER_LEN (optional: the JSON
-- header length for Triton's binary tensor extension, sent as
-- Inference-Header-Content-Length).

local f = assert(io.open(assert(os.getenv("BODY_FILE"), "BODY_FILE not set"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/json"
local authorization = os.getenv("AUTHORIZATION")  -- e.g. "Bearer hth_..." for a server with auth on
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end
local header_len = os.getenv("HEADER_LEN")
if header_len and header_len ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = header_len
end

function done(summary, latency, requests)
  local e = summary.errors
  local bad = e.status
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non200":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, bad,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
