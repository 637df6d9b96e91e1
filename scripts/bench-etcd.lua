-- wrk script for `npm run bench`: etcd's counterpart of bench-writes.lua. PUTs 64 keys in turn
-- through etcd's HTTP gateway (/v3/kv/put, keys and values in base64), each value the size of a
-- shoal update's body, and prints the same summary line.
local keys = tonumber(os.getenv("SHOAL_SERVICES") or "64")
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(data)
  local bits = data:gsub(".", function(c)
    local byte, out = c:byte(), ""
    for i = 8, 1, -1 do out = out .. ((byte % 2 ^ i - byte % 2 ^ (i - 1) > 0) and "1" or "0") end
    return out
  end)
  local text = (bits .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(six)
    if #six < 6 then return "" end
    local n = 0
    for i = 1, 6 do n = n + ((six:sub(i, i) == "1") and 2 ^ (6 - i) or 0) end
    return alphabet:sub(n + 1, n + 1)
  end)
  return text .. ({ "", "==", "=" })[#data % 3 + 1]
end

local bodies = {}
for i = 0, keys - 1 do
  bodies[i] = '{"key":"' .. base64("tp-" .. i) .. '","value":"' .. base64('{"replicas":0}') .. '"}'
end
local next_key = 0

wrk.method = "POST"
wrk.headers["content-type"] = "application/json"

request = function()
  local body = bodies[next_key]
  next_key = (next_key + 1) % keys
  return wrk.format(nil, "/v3/kv/put", nil, body)
end

dofile((os.getenv("SHOAL_BENCH_SCRIPTS") or "scripts") .. "/bench-summary.lua")
