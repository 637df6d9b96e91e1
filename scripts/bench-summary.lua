-- The summary line every wrk script of `npm run bench` prints, for scripts/bench-store.ts to read.
-- Loaded with dofile from SHOAL_BENCH_SCRIPTS, the folder of the scripts.
done = function(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    "shoal-bench requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
