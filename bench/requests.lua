-- wrk script: rotate over a list of requests and count the X-Cache answers.
--
-- Arguments after `--`: a file of "path<TAB>token" lines, and "once" to stop each thread after
-- its share of the list (each line is then requested once), or "loop" to cycle until the end.
-- Each thread takes every n-th line, so threads never send the same line in one pass.
-- A thread that has sent its share prints "thread-done" (wrk itself would wait out -d; the
-- harness interrupts it once every thread is done). At the end one line is printed,
-- "xcache HIT=.. MISS=.. BYPASS=.. OTHER=..", read by bench/wrk.py.

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local lines = {}
  for line in io.lines(args[1]) do
    local path, token = line:match("^([^\t]+)\t(.+)$")
    if path then
      table.insert(lines, {path, token})
    end
  end
  once = args[2] == "once"
  local stride = tonumber(args[3]) or 1
  mine = {}
  for i = index + 1, #lines, stride do
    local path, token = lines[i][1], lines[i][2]
    table.insert(mine, wrk.format("GET", path, {["Authorization"] = "Bearer " .. token}))
  end
  position = 0
  finished = false
  sent, hit, miss, bypass, other = 0, 0, 0, 0, 0
end

function request()
  position = position % #mine + 1
  sent = sent + 1
  return mine[position]
end

function response(status, headers, body)
  local seen = headers["X-Cache"]
  if status ~= 200 then
    other = other + 1
  elseif seen == "HIT" then
    hit = hit + 1
  elseif seen == "MISS" then
    miss = miss + 1
  elseif seen == "BYPASS" then
    bypass = bypass + 1
  else
    other = other + 1
  end
  if once and not finished and hit + miss + bypass + other >= #mine then
    finished = true
    io.write("thread-done\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local totals = {HIT = 0, MISS = 0, BYPASS = 0, OTHER = 0}
  for _, thread in ipairs(threads) do
    totals.HIT = totals.HIT + thread:get("hit")
    totals.MISS = totals.MISS + thread:get("miss")
    totals.BYPASS = totals.BYPASS + thread:get("bypass")
    totals.OTHER = totals.OTHER + thread:get("other")
  end
  io.write(string.format("xcache HIT=%d MISS=%d BYPASS=%d OTHER=%d\n",
    totals.HIT, totals.MISS, totals.BYPASS, totals.OTHER))
end
