-- wrk: POST /orders with a small JSON body (≤ 64 bytes of payload).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"product_id":"p%d","quantity":%d}', counter % 100, 1 + counter % 5)
  return wrk.format(nil, "/orders", nil, body)
end
