-- wrk script for `npm run bench`: GET / as it is, and the summary line for scripts/bench-store.ts.
dofile((os.getenv("SHOAL_BENCH_SCRIPTS") or "scripts") .. "/bench-summary.lua")
