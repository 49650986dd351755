import pytest

from vla_async.config import ConfigError
from vla_async.seed_ranges import format_seeds, parse_seeds


@pytest.mark.parametrize(("seeds", "text"), [([0, 1, 2, 3], "0-3"), ([7, 3, 0, 1, 2], "0-3,7"), ([5], "5"),
                                            ([1, 3, 5], "1,3,5"), ([], ""), (range(1000, 1100), "1000-1099")])
def test_format_seeds_is_compact_and_parse_seeds_reads_it_back(seeds, text):
    assert format_seeds(seeds) == text
    if seeds:
        assert parse_seeds(text) == sorted(set(seeds))


def test_format_seeds_drops_duplicates():
    assert format_seeds([2, 2, 3, 1]) == "1-3"


def test_parse_seeds_rejects_a_backward_range():
    with pytest.raises(ConfigError, match="3-1"):
        parse_seeds("3-1")
