-- wrk script of the core benchmark (bench/run-core-bench.sh): POSTs the CMS76 sample event.
--
-- Environment:
--   BENCH_BODY_FILE  the JSON body (e.g. ${RELAIS_SHARED_DIR}/fixtures/cms76/rdv-planned.json)
--   BENCH_TOKEN      bearer token (sent as Authorization: Bearer ...; empty = no header)
--   BENCH_EXPECT     the status every response must have (202 for relais, 200 via nginx)
--   BENCH_KEYS       "vary" (default): rdv.id and the event id are rewritten per request
--                    (thread * 1e9 + n, and "bench-RUN-thread*1e9+n"), so every message has its
--                    own correlation key and its own idempotency key; "single": the body is
--                    sent unchanged (every message shares the key rdv:91877; with an
--                    idempotency path every message after the first is a duplicate: use
--                    BENCH_SHAPE=bare with it).
--   BENCH_RUN_ID     a prefix that makes event ids unique across runs on one store
--   BENCH_THREAD_BASE  added to the thread index (several wrk processes at once, one per node:
--                    distinct rdv ids)
-- No Idempotency-Key header is sent: the idempotency key, if any, is the body's $.id.
-- done() prints one line "BENCH_RESULT key=value ..." that the run script parses, and exits
-- the process with status 3 if any response had another status than BENCH_EXPECT.

local body_file = os.getenv("BENCH_BODY_FILE") or error("BENCH_BODY_FILE is not set")
local token = os.getenv("BENCH_TOKEN") or ""
local expect = tonumber(os.getenv("BENCH_EXPECT") or "202")
local keys = os.getenv("BENCH_KEYS") or "vary"

local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()

-- The template: the event id (the first `"id": "<text>"`, top level) and rdv.id (the only
-- `"id": <number>` in the sample) become placeholders: head .. event id .. middle .. rdv id .. tail.
local run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())
local head, middle, tail
do
  local s1, e1 = body:find('"id"%s*:%s*"[^"]*"')
  local s2, e2 = body:find('"id"%s*:%s*%d+')
  if keys == "vary" then
    assert(s1 and s2 and e1 < s2, "need a text \"id\" before a numeric rdv \"id\" in " .. body_file)
    head, middle, tail = body:sub(1, s1 - 1), body:sub(e1 + 1, s2 - 1), body:sub(e2 + 1)
  end
end

local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local counter = 0
bad = 0 -- globals: read by done() through thread:get()
first_bad = ""
local headers = { ["Content-Type"] = "application/json" }
if token ~= "" then headers["Authorization"] = "Bearer " .. token end

function init(args)
  counter = (thread_index + tonumber(os.getenv("BENCH_THREAD_BASE") or "0")) * 1000000000
  if keys ~= "vary" then
    -- The same request every time: let wrk pre-build it.
    wrk.method = "POST"
    wrk.body = body
    for k, v in pairs(headers) do wrk.headers[k] = v end  -- keep the Host header wrk set
  end
end

if keys == "vary" then
  function request()
    counter = counter + 1
    return wrk.format("POST", nil, headers, head .. '"id": "bench-' .. run_id .. '-' .. counter ..
                      '"' .. middle .. '"id": ' .. counter .. tail)
  end
end

function response(status, hdrs, resp_body)
  if status ~= expect then
    bad = bad + 1
    if first_bad == "" then first_bad = status .. " " .. string.sub(resp_body or "", 1, 200) end
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  local sample = ""
  for _, t in ipairs(threads) do
    total_bad = total_bad + (t:get("bad") or 0)
    local fb = t:get("first_bad") or ""
    if sample == "" and fb ~= "" then sample = fb end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_s=%.3f rps=%.1f ok=%d bad=%d p50_us=%d p90_us=%d " ..
    "p99_us=%d max_us=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
    summary.requests, secs, summary.requests / secs, summary.requests - total_bad, total_bad,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout))
  if total_bad > 0 then
    io.write("BENCH_FAIL " .. total_bad .. " response(s) were not " .. expect .. "; first: " ..
             sample:gsub("\n", " ") .. "\n")
    os.exit(3)
  end
end
