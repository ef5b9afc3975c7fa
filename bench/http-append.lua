-- The append load of bench/http.bench.ts for wrk (https://github.com/wg/wrk), run as
--   wrk -t1 -c<clients> -d<seconds>s -s bench/http-append.lua <base>v1/append -- <clients> <account offset> <token>
-- Request n is the (n div clients)-th 3-event append of caller (n mod clients), to its own
-- `account:<offset + caller>` with amounts i*3+k: the appends the direct baseline makes. Every
-- answer must be 201 with "count":3; done() prints one JSON line the bench reads.
local clients, offset, n = 1, 0, 0
local headers = { ['content-type'] = 'application/json' }
bad = 0

function init(args)
  clients, offset = tonumber(args[1]), tonumber(args[2])
  headers['authorization'] = 'Bearer ' .. args[3]
end

function request()
  local caller, i = n % clients, math.floor(n / clients)
  n = n + 1
  local event = '{"type":"Deposited","tags":["account:' .. (offset + caller) .. '"],"data":{"amount":%d}}'
  local body = '{"events":[' .. string.format(event, i * 3) .. ',' .. string.format(event, i * 3 + 1) .. ','
    .. string.format(event, i * 3 + 2) .. ']}'
  return wrk.format('POST', nil, headers, body)
end

function response(status, _, body)
  if status ~= 201 or not string.find(body, '"count":3,', 1, true) then bad = bad + 1 end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary)
  local refused = 0
  for _, thread in ipairs(threads) do refused = refused + thread:get('bad') end
  local e = summary.errors
  io.write(string.format('{"requests":%d,"micros":%d,"bad":%d,"socketErrors":%d}\n', summary.requests, summary.duration,
    refused, e.connect + e.read + e.write + e.timeout))
end
