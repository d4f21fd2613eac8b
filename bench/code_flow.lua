-- wrk script for bench/code_flow.py: POST /token with single-use credentials
-- (authorization codes or refresh tokens), each sent exactly once.
--
-- Environment (set by code_flow.py):
--   BENCH_TOKENS_FILE   the codes or refresh tokens, one per line
--   BENCH_THREADS       wrk's thread count (-t), to cut the file into slices
--   BENCH_BODY_PREFIX   the form body before the token, e.g.
--                       "grant_type=refresh_token&refresh_token="
--   BENCH_BODY_SUFFIX   the form body after it, e.g. "&redirect_uri=...&code_verifier=..."
--   BENCH_AUTHORIZATION the Authorization header ("Basic ...")
--   BENCH_PATH          the path, /token
--
-- and, for bench/rp_paths.py:
--   BENCH_BEARER=1      GET BENCH_PATH with "Authorization: Bearer <token>" and no body
--                       (userinfo); BENCH_AUTHORIZATION and the body variables unused
--   BENCH_CYCLE=1       reusable tokens (access tokens): a thread that has sent its whole
--                       slice starts it over instead of stopping
--   BENCH_IDLE_PATH     the harmless GET returned once a slice is used up (default /up)
--
-- and, for bench/dpop.py:
--   BENCH_DPOP=1        each line is a DPoP proof (RFC 9449), sent once in the DPoP header
--                       of POST BENCH_PATH, whose body is BENCH_BODY_PREFIX .. SUFFIX
--   BENCH_DPOP_TOKENS=1 each line is "TOKEN<TAB>PROOF": a single-use token (a refresh
--                       token) sent in the body, BENCH_BODY_PREFIX .. TOKEN .. SUFFIX,
--                       with its own DPoP proof in the DPoP header, the pair sent once
--
-- setup(thread) gives each wrk thread its own slice of the file (lines first..last),
-- init() builds that slice's requests once, before wrk starts its clock, and request()
-- hands them out in order, so no token is sent twice, by one thread or by two. When a
-- thread has sent its whole slice it stops (wrk.thread:stop()) and counts itself
-- "exhausted": code_flow.py then discards the run (its duration and req/s would be
-- wrong) and repeats it with more tokens. It never sends a token a second time.
--
-- wrk calls request() once on the first thread before the run, to check the request
-- (script_verify_request); that call does not take a token.
--
-- done() prints BENCH_RESULT {json} as token.lua does, plus "exhausted" (threads that
-- ran out) and "sent" (requests handed out), and BENCH_SAMPLE with the first non-2xx
-- response.

local path = os.getenv("BENCH_PATH") or "/token"
local prefix = os.getenv("BENCH_BODY_PREFIX") or ""
local suffix = os.getenv("BENCH_BODY_SUFFIX") or ""
local file = os.getenv("BENCH_TOKENS_FILE")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local bearer = os.getenv("BENCH_BEARER") == "1"
local dpop = os.getenv("BENCH_DPOP") == "1"
local dpop_tokens = os.getenv("BENCH_DPOP_TOKENS") == "1"
local authorization = os.getenv("BENCH_AUTHORIZATION")
local cycle = os.getenv("BENCH_CYCLE") == "1"
local idle_path = os.getenv("BENCH_IDLE_PATH") or "/up"

wrk.method = "POST"
wrk.path = path
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = authorization

-- ------------------------------------------------------------------ main state

local threads = {}
local total = nil

local function count_lines(name)
   local n = 0
   for line in io.lines(name) do
      if line ~= "" then
         n = n + 1
      end
   end
   return n
end

function setup(thread)
   if file == nil or file == "" then
      error("BENCH_TOKENS_FILE is not set")
   end
   if total == nil then
      total = count_lines(file)
   end
   table.insert(threads, thread)
   local i = #threads -- 1-based, in thread creation order
   local per = math.floor(total / nthreads)
   local first = (i - 1) * per + 1
   local last = i * per
   if i == nthreads then
      last = total -- the remainder goes to the last thread
   end
   thread:set("id", i)
   thread:set("first", first)
   thread:set("last", last)
end

-- ------------------------------------------------------------------ thread state

requests = {} -- this thread's prepared requests
nextreq = 1 -- index of the next one to hand out
sent = 0
exhausted = 0
verified = false
non2xx = 0
sample = ""

function init(args)
   local n = 0
   for line in io.lines(file) do
      if line ~= "" then
         n = n + 1
         if n >= first and n <= last and bearer then
            local headers = { Accept = "application/json", Authorization = "Bearer " .. line }
            requests[#requests + 1] = wrk.format("GET", path, headers, nil)
         elseif n >= first and n <= last and dpop then
            local headers = {
               ["Content-Type"] = "application/x-www-form-urlencoded",
               Accept = "application/json",
               Authorization = authorization,
               DPoP = line,
            }
            requests[#requests + 1] = wrk.format("POST", path, headers, prefix .. suffix)
         elseif n >= first and n <= last and dpop_tokens then
            local token, proof = string.match(line, "^([^\t]+)\t([^\t]+)$")
            if token == nil then
               error("BENCH_DPOP_TOKENS: line " .. n .. " is not TOKEN<TAB>PROOF")
            end
            local headers = {
               ["Content-Type"] = "application/x-www-form-urlencoded",
               Accept = "application/json",
               Authorization = authorization,
               DPoP = proof,
            }
            requests[#requests + 1] = wrk.format("POST", path, headers, prefix .. token .. suffix)
         elseif n >= first and n <= last then
            requests[#requests + 1] = wrk.format(nil, nil, nil, prefix .. line .. suffix)
         end
      end
   end
   -- a harmless request to return once the slice is used up (request() must return one)
   idle = wrk.format("GET", idle_path, {}, nil)
end

function request()
   if id == 1 and not verified then
      -- wrk's own check of the request on the first thread: do not use up a token
      verified = true
      return requests[nextreq] or idle
   end
   local r = requests[nextreq]
   if r == nil and cycle and nextreq > 1 then
      nextreq = 1
      r = requests[1]
   end
   if r == nil then
      if exhausted == 0 then
         exhausted = 1
         wrk.thread:stop()
      end
      return idle
   end
   nextreq = nextreq + 1
   sent = sent + 1
   return r
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if sample == "" then
         sample = tostring(status) .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

function done(summary, latency, requests)
   local bad, out, sent_total = 0, 0, 0
   local first_bad = ""
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
      out = out + (thread:get("exhausted") or 0)
      sent_total = sent_total + (thread:get("sent") or 0)
      local s = thread:get("sample")
      if first_bad == "" and s ~= nil and s ~= "" then
         first_bad = s
      end
   end
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_s": %.3f, "rps": %.2f, '
         .. '"p50_ms": %.3f, "p75_ms": %.3f, "p90_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, '
         .. '"mean_ms": %.3f, "max_ms": %.3f, "non_2xx": %d, "errors_status": %d, '
         .. '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_timeout": %d, '
         .. '"tokens": %d, "sent": %d, "exhausted": %d}\n',
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(75) / 1000,
      latency:percentile(90) / 1000, latency:percentile(95) / 1000,
      latency:percentile(99) / 1000, latency.mean / 1000, latency.max / 1000,
      bad, e.status, e.connect, e.read, e.write, e.timeout,
      total or 0, sent_total, out))
   if first_bad ~= "" then
      io.write("BENCH_SAMPLE " .. string.gsub(first_bad, "[\r\n]", " ") .. "\n")
   end
end
