-- wrk: GET /orders/{id} over ids 1..N (N from the ORDERS environment variable).
local n = tonumber(os.getenv("ORDERS") or "1000")
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/orders/" .. tostring(1 + counter % n))
end
