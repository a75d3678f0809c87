-- wrk script: Keyward's `POST /render` with one `${SECRET:…}` placeholder.
-- KEYWARD_TOKEN: a resolver API token; BENCH_SECRET: the secret's name.
-- Every answer must be 200 with the rendered text (see report.lua).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local token = os.getenv("KEYWARD_TOKEN") or error("set KEYWARD_TOKEN to a resolver token")
local name = os.getenv("BENCH_SECRET") or "BENCH_SECRET"

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"template": "password=${SECRET:' .. name .. '}\\n", "reason": "bench/http: wrk"}'
