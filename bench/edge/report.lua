-- wrk script of the edge benchmark: prints one JSON line with the figures that
-- bench/edge/run records. wrk reports times in microseconds.
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'wrk-json: {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
