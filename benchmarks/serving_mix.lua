-- wrk script for benchmarks/serving.py: an open loop at a fixed rate, with a request mix.
--
-- Run with as many threads as connections (wrk -t C -c C), so each thread drives one connection.
-- Each connection sends on a fixed schedule (connection i at start + i/RATE + n*C/RATE), so the
-- connections together send RATE requests per second. A request's latency counts from the moment it
-- was due, not from when it was sent: a slow answer delays the next request and that wait is counted
-- (no coordinated omission). Latencies go to MIX_OUT/latencies.tsv for the driver to read.
--
-- Environment: MIX_RATE (requests/s), MIX_CONNECTIONS, MIX_EVENT_SHARE (share of POST /v1/events),
-- MIX_USERS (a file of shopper ids, one per line), MIX_ITEMS (item ids), MIX_KEY (API key),
-- MIX_OUT (a folder), MIX_SEED.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } mix_timespec;
  int clock_gettime(int clk_id, mix_timespec *tp);
]]
local clock = ffi.new("mix_timespec")
local function now()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local function lines(path)
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then out[#out + 1] = line end
  end
  return out
end

local counter = 0
threads = {}
function setup(thread)
  thread:set("index", counter)
  threads[#threads + 1] = thread
  counter = counter + 1
end

local rate = tonumber(os.getenv("MIX_RATE"))
local connections = tonumber(os.getenv("MIX_CONNECTIONS"))
local event_share = tonumber(os.getenv("MIX_EVENT_SHARE") or "0.1")
local key = os.getenv("MIX_KEY")
local out_dir = os.getenv("MIX_OUT")
local users, items, interval, start, sent, due, kind

function init(args)
  users = lines(os.getenv("MIX_USERS"))
  items = lines(os.getenv("MIX_ITEMS"))
  math.randomseed(tonumber(os.getenv("MIX_SEED") or "1") * 1000 + index)
  interval = connections / rate
  start = now() + 0.2 + index / rate
  sent = 0
  latencies, kinds, statuses = {}, {}, {}
end

function delay()
  local wait = start + sent * interval - now()
  if wait <= 0 then return 0 end
  return math.floor(wait * 1000)
end

function request()
  due = start + sent * interval
  sent = sent + 1
  local user = users[math.random(#users)]
  if math.random() < event_share then
    kind = "e"
    local item = items[math.random(#items)]
    local body = '{"user_id":"' .. user .. '","item_id":"' .. item .. '","event_type":"view"}'
    return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key}, body)
  end
  kind = "r"
  return wrk.format("GET", "/v1/users/" .. user .. "/recommendations?k=10")
end

function response(status, headers, body)
  local n = #latencies + 1
  latencies[n] = now() - math.max(due, start)
  kinds[n] = kind
  statuses[n] = status
end

function done(summary, latency, requests)
  -- wrk runs done() in its main thread: each thread's tables are copied out with thread:get
  local file = io.open(out_dir .. "/latencies.tsv", "w")
  for _, thread in ipairs(threads) do
    local l, k, s = thread:get("latencies"), thread:get("kinds"), thread:get("statuses")
    for i = 1, #l do
      file:write(k[i], "\t", s[i], "\t", string.format("%.6f", l[i]), "\n")
    end
  end
  file:write("#errors\t", summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, "\t", summary.errors.status, "\n")
  file:close()
end
