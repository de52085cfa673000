-- wrk: POST /orders as create_order.lua, each request with a W3C traceparent
-- of its own (a new trace id and parent span id, sampled).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local function hex(words)
  local out = {}
  for i = 1, words do out[i] = string.format("%08x", math.random(1, 0x7fffffff)) end
  return table.concat(out)
end
request = function()
  counter = counter + 1
  local body = string.format('{"product_id":"p%d","quantity":%d}', counter % 100, 1 + counter % 5)
  -- (wrk.format takes these instead of wrk.headers, not in addition)
  local headers = { ["Content-Type"] = "application/json",
                    ["traceparent"] = "00-" .. hex(4) .. "-" .. hex(2) .. "-01" }
  return wrk.format(nil, "/orders", headers, body)
end
