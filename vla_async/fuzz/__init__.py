"""Fault injection for the wire protocol: a seeded, structure-aware generator of malformed messages
(`generator`), a hostile server for testing clients (`hostile_server`) and the fuzz campaign run by
the CI tests and `vla-async bench fuzz` (`campaign`)."""
