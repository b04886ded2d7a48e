//! The HTTP endpoints operators scrape and probe: /metrics, /healthz, /readyz, /debug/pprof (issue 7).
