-- Shared by the wrk scripts of bench/http (loaded with dofile): counts the
-- answers that are not 2xx in each thread's `response` hook, sums them over
-- the threads in `done`, and prints one line that bench/http/run parses:
--
--   RESULT requests=N duration_us=N p50_us=N p90_us=N p99_us=N max_us=N non2xx=N socket_errors=N

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- Per thread (each wrk thread has its own Lua state).
non2xx = 0

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if non2xx == 1 then
         io.stderr:write(string.format("first non-2xx answer: %d %s\n", status, body:sub(1, 300)))
      end
   end
end

function done(summary, latency, requests)
   local bad = 0
   for _, thread in ipairs(threads) do
      bad = bad + thread:get("non2xx")
   end
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d socket_errors=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      bad, e.connect + e.read + e.write + e.timeout))
end
