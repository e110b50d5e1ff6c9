-- wrk script: POST a rotating set of request bodies with an Authorization header, stop each
-- thread after a request budget, and print one JSON line of results for bench/load.py.
--
-- Usage: wrk -s bench/post.lua URL -- BODIES_FILE MAX_REQUESTS_PER_THREAD
--   BODIES_FILE holds one request body per line (already in its final form, e.g. JSON).
-- Environment: WRK_AUTH (the full Authorization header value, may be empty),
--              WRK_CONTENT_TYPE (default application/json).

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]

-- Wall-clock microseconds: wrk runs for its whole -d even when every thread stopped at its
-- budget, so the active time is measured here from each thread's first to last answer.
local function now_us()
  local tv = ffi.new("bench_timeval")
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000000 + tonumber(tv.tv_usec)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local bodies_file = args[1]
  max_requests = tonumber(args[2]) or 0
  local headers = { ["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json" }
  local auth = os.getenv("WRK_AUTH")
  if auth and auth ~= "" then headers["Authorization"] = auth end
  -- Build every request once: formatting per request would make wrk the bottleneck.
  requests = {}
  for line in io.lines(bodies_file) do
    table.insert(requests, wrk.format("POST", nil, headers, line))
  end
  if #requests == 0 then error("no request bodies in " .. bodies_file) end
  next_index = 0
  responses = 0
  statuses = {}
  started_us = now_us()
  last_us = started_us
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function response(status, headers, body)
  responses = responses + 1
  last_us = now_us()
  statuses[status] = (statuses[status] or 0) + 1
  if max_requests > 0 and responses >= max_requests then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local counts = {}
  local first, last = nil, 0
  for _, thread in ipairs(threads) do
    local s, l = thread:get("started_us"), thread:get("last_us")
    if s and (first == nil or s < first) then first = s end
    if l and l > last then last = l end
    for status, n in pairs(thread:get("statuses") or {}) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us": %d, "active_us": %d, "requests": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, ' ..
    '"statuses": {%s}}\n',
    summary.duration, first and (last - first) or 0, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, table.concat(parts, ", ")))
end
