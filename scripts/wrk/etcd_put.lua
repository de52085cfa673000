-- wrk: etcd v3 HTTP gateway, POST /v3/kv/put of a fresh key per request with
-- a value shaped like catga-orders' POST /orders body (base64, as the gateway's
-- JSON wants bytes). The etcd counterpart of create_order.lua.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 4 - (b and 0 or 1) - (c and 0 or 1)
    for k = 1, 4 do
      if k <= chars then
        local v = math.floor(n / 2 ^ (6 * (4 - k))) % 64
        out[#out + 1] = alphabet:sub(v + 1, v + 1)
      else
        out[#out + 1] = "="
      end
    end
  end
  return table.concat(out)
end
local thread_id = 0
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("prefix", "t" .. thread_id)
end
local counter = 0
request = function()
  counter = counter + 1
  local key = string.format("orders/%s/%d", prefix or "t", counter)
  local value = string.format('{"product_id":"p%d","quantity":%d}', counter % 100, 1 + counter % 5)
  local body = string.format('{"key":"%s","value":"%s"}', base64(key), base64(value))
  return wrk.format(nil, "/v3/kv/put", nil, body)
end
