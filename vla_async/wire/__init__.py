"""The wire protocol in small parts: `codec` (msgpack header + raw frames), `validation` (arrays against
the agreed spec), `builders` (header meta → messages), `decoder` (the one entry point tying them together).

`vla_async.protocol` re-exports the public names; import from there.
"""
