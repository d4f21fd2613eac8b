-- wrk script for bench/token_endpoint.py: POST /token, grant_type=client_credentials,
-- client_secret_basic. The Authorization header value comes from the environment
-- (BENCH_AUTHORIZATION="Basic ...") so that the request stays static: wrk builds it
-- once per thread and no Lua runs to produce each request.
--
-- done() prints one machine-readable line, BENCH_RESULT followed by JSON, with
-- requests/s, latency percentiles in milliseconds, the count of non-2xx responses
-- and socket errors; and, when any response was not 2xx, a BENCH_SAMPLE line with the
-- first such response (status and the start of its body) for diagnosis.

--
-- BENCH_BODY replaces the form (bench/token_exchange.py: a token-exchange request).
-- BENCH_METHOD=GET (bench/rp_paths.py) sends a GET of BENCH_PATH instead, without a body
-- (JWKS, discovery); BENCH_AUTHORIZATION is then optional.

wrk.method = os.getenv("BENCH_METHOD") or "POST"
wrk.path = os.getenv("BENCH_PATH") or "/token"
if wrk.method == "POST" then
   wrk.body = os.getenv("BENCH_BODY") or "grant_type=client_credentials"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- per-thread state, read back by done() through thread:get()
non2xx = 0
sample = ""

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if sample == "" then
         sample = tostring(status) .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

function done(summary, latency, requests)
   local bad = 0
   local first = ""
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
      local s = thread:get("sample")
      if first == "" and s ~= nil and s ~= "" then
         first = s
      end
   end
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_s": %.3f, "rps": %.2f, '
         .. '"p50_ms": %.3f, "p75_ms": %.3f, "p90_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, '
         .. '"mean_ms": %.3f, "max_ms": %.3f, "non_2xx": %d, "errors_status": %d, '
         .. '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_timeout": %d}\n',
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(75) / 1000,
      latency:percentile(90) / 1000, latency:percentile(95) / 1000,
      latency:percentile(99) / 1000, latency.mean / 1000, latency.max / 1000,
      bad, e.status, e.connect, e.read, e.write, e.timeout))
   if first ~= "" then
      io.write("BENCH_SAMPLE " .. string.gsub(first, "[\r\n]", " ") .. "\n")
   end
end
