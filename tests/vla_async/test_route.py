"""The robot side of a fleet's route: the request URL, strict parsing of answers, fallback."""

from __future__ import annotations

import json

import pytest

from vla_async.route import RouteError, ServerTarget, parse_route_answer, route_request_url

KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"


def test_request_url_names_the_robot_and_the_lost_replica():
    assert route_request_url("http://h:8000/route", "arm-1") == "http://h:8000/route?robot=arm-1"
    url = route_request_url("http://h:8000/route?x=1", "arm-1", failed="10.0.0.2:6001")
    assert url == "http://h:8000/route?x=1&robot=arm-1&failed=10.0.0.2%3A6001"
    with pytest.raises(ValueError, match="robot name"):
        route_request_url("http://h/route", "bad name/..")


def test_a_good_answer_parses():
    a = parse_route_answer(json.dumps({"host": "10.0.0.2", "port": 6001, "replica": "x", "server_public_key": KEY}).encode())
    assert (a.address, a.replica, a.server_public_key) == ("10.0.0.2:6001", "x", KEY)


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"port": 1}', b'{"host": "h", "port": 0}', b'{"host": "h", "port": "80"}',
    b'{"host": "h", "port": true}', b'{"host": "h h", "port": 80}', b'{"host": "h", "port": 80, "server_public_key": "short"}',
    b'{"host": "h", "port": 80, "replica": 5}', b"{" + b" " * 5000 + b"}",
])
def test_bad_answers_are_one_line_errors(body):
    with pytest.raises(RouteError):
        parse_route_answer(body)


def test_an_unreachable_route_keeps_the_last_address():
    target = ServerTarget("127.0.0.1", 5999, route_url="http://127.0.0.1:9/route", robot="r1", timeout_s=0.5)
    target.mark_lost()
    assert target.refresh() is False
    assert target.address == "127.0.0.1:5999" and target.errors == 1 and "unreachable" in target.last_error
    assert target.lost is None  # told (or tried to tell) once


def test_without_a_route_nothing_is_asked():
    target = ServerTarget("127.0.0.1", 5999)
    assert target.refresh() is False and target.asks == 0


def test_the_robot_side_never_imports_ray():
    import subprocess
    import sys

    code = ("import sys, vla_async.route, vla_async.transport, robot_client.loop, robot_client.fleet_robots; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
