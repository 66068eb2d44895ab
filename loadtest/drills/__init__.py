"""Failover drills: steady load on a local topology, a fault at a set time, a verdict.

    python -m loadtest.drills redis-kill --duration 45 --out bench-out/drills/redis-kill

A drill starts its own topology (a durable global Redis, one region of two edges, or two for
region-failover; every Redis behind a fault proxy), drives a steady, bounded load from the
corpus over the edges, injects the fault at 1/3 of the run and removes it at 2/3, then stops
everything it started. Meanwhile it polls every edge's /readyz four times a second, to report
how long the fault took to show there (time to detect) and how long after its end every edge
was healthy again (time to recover). It writes `samples.csv` (one row per request),
`report.md` and `timeline.png` (p50/p99, rps, failures and tier mix per second, the fault
shaded) and exits 1 when a target is missed.

Clients behave like a load balancer's: a request that finds its edge refusing connections or
not ready (503 from a node that is still loading) is sent once more, to the next edge.

Drills and their targets (all: 0 failed requests unless said otherwise):
  redis-kill       SIGKILL the region's redis-server, start it again on the same port.
  redis-pause      SIGSTOP the region's redis-server (a frozen host), SIGCONT later.
  redis-blackhole  the fault proxy accepts and swallows: Redis never answers.
  redis-slow       the fault proxy adds 200 ms each way to every Redis exchange.
                   For these four: p99 during the fault <= 2 x baseline p99 + the L2 timeout,
                   and L2 answers (HIT-L2) again within 10 s of the fault ending.
  global-down      SIGKILL the global store's Redis (append-only file, fsync always), start it
                   again: the edges' write-behind queues hold the writes and drain within 30 s
                   of its return; every entry the store had is still there, and one new entry
                   per prompt first answered from the fault's start on has landed.
  encoder-fail     the edges' encoders raise (POST /admin/faults): misses get fallback
  encoder-hang     answers flagged degraded, hits keep coming from the caches, nothing
                   fails, and normal answers (MISS) resume within 10 s of the model's return.
                   (hang: the encoder thread blocks; requests give up at the compute timeout.)
  edge-kill        SIGKILL one edge and its workers, start it again: clients fail over, the
                   restarted edge is ready within 60 s with >= 10 popular prompts prewarmed.
  region-failover  both edges of region r1 are killed: r1's clients move to region r2, which
                   answers r1's prompts from its tiers (the global store) after at most one
                   compute per prompt; r1 comes back at the end.
  overload         a flood of never-seen prompts at 3x the edge's measured miss capacity:
                   requests for cached prompts keep succeeding (p99 <= 500 ms), flood misses
                   beyond capacity get 503 with Retry-After and nothing else fails, the edge's
                   memory stays within 1.25x of its size before, and misses are served again
                   within 5 s of the flood's end.

The package, by concern:
  samples    Sample (one request as the drill saw it) and samples.csv
  harness    the steady load, the /readyz watcher, topology control, edge restarts
  faults     the Drill contract and every drill above but overload
  overload   the overload drill (its flood comes from a process of its own)
  verdicts   the targets every drill is held to; time to detect and to recover
  report     timeline.png and report.md
  run        one drill from topology up to verdict, and DRILLS, every drill by name
"""
