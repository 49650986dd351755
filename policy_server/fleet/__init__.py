"""A robot fleet on Ray Serve (docs/fleet.md). `registry` and `autoscale` are pure; `ray_app`, `cli` and the
bench import ray (the extra `vla-async[ray]`)."""
