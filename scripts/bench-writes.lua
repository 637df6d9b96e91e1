-- wrk script for `npm run bench`: PATCHes the services tp-0 .. tp-(N-1) in turn (N from
-- SHOAL_SERVICES, 64 by default) with the API token from SHOAL_TOKEN, and prints one summary line
-- for scripts/bench-fleet.ts to read.
local services = tonumber(os.getenv("SHOAL_SERVICES") or "64")
local next_service = 0

wrk.method = "PATCH"
wrk.body = '{"replicas":0}'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. (os.getenv("SHOAL_TOKEN") or "")

request = function()
  local path = "/v1/services/tp-" .. next_service
  next_service = (next_service + 1) % services
  return wrk.format(nil, path)
end

dofile((os.getenv("SHOAL_BENCH_SCRIPTS") or "scripts") .. "/bench-summary.lua")
