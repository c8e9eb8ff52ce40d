-- wrk script for the release tests: POSTs the request bodies of BODIES_FILE (one
-- JSON body per line) in turn, so that the load carries varied inputs (a candidate
-- that fails on some inputs meets them), and prints a JSON summary line with the
-- counts of error answers (status >= 400) and socket errors.
local bodies = {}
local path = os.getenv("BODIES_FILE")
assert(path, "BODIES_FILE not set")
for line in io.lines(path) do
  bodies[#bodies + 1] = line
end
local next_body = math.random(#bodies)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"non200":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
