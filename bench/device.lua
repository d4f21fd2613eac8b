-- wrk script for bench/device.py: POST /token with grant_type
-- urn:ietf:params:oauth:grant-type:device_code for many pending device codes, as the
-- devices of many people poll (RFC 8628 §3.4): a public client (client_id in the body),
-- each thread going round its own slice of the codes in BENCH_CODES_FILE (one a line),
-- so that a code is polled again only after the whole slice, which the script sizes to
-- take longer than the interval.
--
-- Every answer should be 400 authorization_pending; done() prints BENCH_RESULT (as
-- token.lua, plus "pending", "slow_down" and "other" counts) and, for anything else,
-- BENCH_SAMPLE with the first such answer.

wrk.method = "POST"
wrk.path = "/token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"

local prefix = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id="
   .. os.getenv("BENCH_CLIENT_ID") .. "&device_code="
local threads = {}
local count = 0

function setup(thread)
   thread:set("index", count)
   count = count + 1
   table.insert(threads, thread)
end

pending = 0
slow = 0
other = 0
sample = ""
local codes = {}
local next_code = 1

function init(args)
   local total = tonumber(os.getenv("BENCH_THREADS"))
   local all = {}
   for line in io.lines(os.getenv("BENCH_CODES_FILE")) do
      if line ~= "" then
         table.insert(all, line)
      end
   end
   for i = index + 1, #all, total do
      table.insert(codes, all[i])
   end
end

function request()
   local code = codes[next_code]
   next_code = next_code + 1
   if next_code > #codes then
      next_code = 1
   end
   return wrk.format(nil, nil, nil, prefix .. code)
end

function response(status, headers, body)
   if status == 400 and string.find(body, "authorization_pending", 1, true) then
      pending = pending + 1
   elseif status == 400 and string.find(body, "slow_down", 1, true) then
      slow = slow + 1
   else
      other = other + 1
      if sample == "" then
         sample = tostring(status) .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

function done(summary, latency, requests)
   local p, s, o, first = 0, 0, 0, ""
   for _, thread in ipairs(threads) do
      p = p + (thread:get("pending") or 0)
      s = s + (thread:get("slow") or 0)
      o = o + (thread:get("other") or 0)
      local sm = thread:get("sample")
      if first == "" and sm ~= nil and sm ~= "" then
         first = sm
      end
   end
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_s": %.3f, "rps": %.2f, '
         .. '"p50_ms": %.3f, "p75_ms": %.3f, "p90_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, '
         .. '"mean_ms": %.3f, "max_ms": %.3f, "pending": %d, "slow_down": %d, "other": %d, '
         .. '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_timeout": %d}\n',
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(75) / 1000,
      latency:percentile(90) / 1000, latency:percentile(95) / 1000,
      latency:percentile(99) / 1000, latency.mean / 1000, latency.max / 1000,
      p, s, o, e.connect, e.read, e.write, e.timeout))
   if first ~= "" then
      io.write("BENCH_SAMPLE " .. string.gsub(first, "[\r\n]", " ") .. "\n")
   end
end
