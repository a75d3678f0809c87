-- wrk script: a plain GET (Keyward's /healthz, OpenBao's KV v2 read).
-- BENCH_HEADER, if set, is sent as one `Name: value` header (OpenBao's
-- X-Vault-Token). Every answer must be 2xx (see report.lua).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local header = os.getenv("BENCH_HEADER")
if header and header ~= "" then
   local name, value = header:match("^([^:]+):%s*(.*)$")
   wrk.headers[name] = value
end
