"""Policy server runtime and backends. Heavy libraries are imported lazily inside each backend."""
