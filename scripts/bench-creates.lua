-- wrk script for `npm run bench`: POSTs services named <SHOAL_PREFIX>-<n>, n counting up (one
-- thread), with the API token from SHOAL_TOKEN, and prints one summary line as bench-writes.lua.
local prefix = os.getenv("SHOAL_PREFIX") or "create"
local next_service = 0

wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. (os.getenv("SHOAL_TOKEN") or "")

request = function()
  local body = '{"name":"' .. prefix .. '-' .. next_service ..
    '","replicas":0,"containers":[{"name":"c","image":"shoal-test/busybox:1"}]}'
  next_service = next_service + 1
  return wrk.format(nil, "/v1/services", nil, body)
end

dofile((os.getenv("SHOAL_BENCH_SCRIPTS") or "scripts") .. "/bench-summary.lua")
