"""vlash_rail_stream is vlash_rail with streamed chunks and nothing else, so comparing them measures the delivery."""

from vla_async.config.schema import strategy_config


def test_vlash_rail_stream_differs_from_vlash_rail_only_in_streaming():
    whole = strategy_config("vlash_rail").model_dump()
    stream = strategy_config("vlash_rail_stream").model_dump()
    differ = {key for key in whole if whole[key] != stream[key]}
    assert differ == {"name", "streaming"}, {key: (whole[key], stream[key]) for key in differ}
    assert stream["streaming"] and not whole["streaming"]
