"""`vla-async bench transport` runs end to end over real sockets and reports sane numbers (no timing asserts)."""

import json

import pytest

from vla_async.bench.transport import main


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.parametrize("pin", [True, False])
def test_bench_transport_reports_every_round_trip(tmp_path, capsys, pin: bool) -> None:
    out = tmp_path / "transport.json"
    args = ["--n", "30", "--paced-n", "5", "--paced-hz", "100", "--warmup", "5", "--json", str(out)]
    assert main(args + ([] if pin else ["--no-pin"])) == 0
    result = json.loads(out.read_text())
    assert result["payload"]["bytes_per_observation"] > 3 * 224 * 224 * 3  # raw images + header + state
    assert result["payload"]["bytes_per_chunk"] >= 50 * 14 * 4
    for mode, n in (("back_to_back", 30), ("paced", 5)):
        assert result[mode]["failures"] == 0 and result[mode]["n"] == n
        rtt = result[mode]["rtt_ms"]
        assert 0 < rtt["p50"] <= rtt["p99"] <= rtt["max"]
        assert result[mode]["server_ms"]["p50"] < rtt["p50"]  # the server's share is inside the round trip
        raw = result["raw_zmq"][mode]  # the bare ZeroMQ reference of the same frames, same run
        assert raw["failures"] == 0 and raw["n"] == n and 0 < raw["rtt_ms"]["p50"] <= raw["rtt_ms"]["max"]
        for cpu in (result[mode]["cpu_us"], raw["cpu_us"]):  # CPU per round trip of both processes
            assert cpu["client"] > 0 and (cpu["server"] is None or cpu["server"] >= 0)
    printed = capsys.readouterr().out
    assert "back_to_back" in printed and "x raw" in printed and "CPU per round trip" in printed


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_bench_transport_floor_references_answer_every_round_trip(tmp_path, capsys) -> None:
    out = tmp_path / "transport.json"
    args = ["--n", "12", "--paced-n", "4", "--paced-hz", "100", "--warmup", "3", "--blocks", "2", "--floor",
            "--json", str(out)]
    assert main(args) == 0
    result = json.loads(out.read_text())
    for name in ("floor_codec_client", "floor_decode", "floor_model", "floor_model_hop", "floor_both"):
        for mode, n in (("back_to_back", 12), ("paced", 4)):  # the minimal peers really decoded and answered
            ref = result[name][mode]
            assert ref["failures"] == 0 and ref["n"] == n and 0 < ref["rtt_ms"]["p50"] <= ref["rtt_ms"]["max"]
    assert "x the floor" in capsys.readouterr().out
