"""The tracking lag `vla-async calibrate --move` measures and writes as strategy.state_lag_ticks."""

import numpy as np
import pytest

from robot_client.calibrate import Latencies, latency_settings
from robot_client.servo_lag import tracking_lag
from vla_async.config import ClientConfig
from vla_async.config.schema import strategy_config


def _first_order(commands: np.ndarray, alpha: float) -> np.ndarray:
    """States read before each command is sent: s[k+1] = s[k] + α (c[k] − s[k])."""
    s = np.zeros(len(commands))
    for k in range(len(commands) - 1):
        s[k + 1] = s[k] + alpha * (commands[k] - s[k])
    return s


@pytest.mark.parametrize("delay", [0, 1, 3, 6])
def test_a_pure_delay_is_its_own_lag(delay):
    """s[k] = c[k − delay] (read before c[k] is sent): the nearest command is `delay` ticks back."""
    c = 0.01 * np.arange(60.0)
    s = np.r_[np.zeros(delay), c[: len(c) - delay]]
    assert tracking_lag(c, s) == delay


def test_a_first_order_servo_trails_a_ramp_by_about_one_over_alpha():
    c = np.r_[0.01 * np.arange(1, 61), 0.01 * np.arange(59, -1, -1)]
    lags = [tracking_lag(c, _first_order(c, alpha)) for alpha in (1.0, 0.5, 0.25)]
    assert lags == sorted(lags) and lags[0] == 1 and 3 <= lags[-1] <= 5, lags


def test_no_motion_means_no_measurement_and_bad_shapes_are_refused():
    assert tracking_lag(np.zeros(40), np.zeros(40)) is None
    with pytest.raises(ValueError, match="1-D and alike"):
        tracking_lag(np.zeros(40), np.zeros(39))


def test_calibrate_writes_the_lag_only_for_a_strategy_that_reads_it():
    rtt = np.full(20, 0.2)
    lat = Latencies(rtt, np.full(20, 150.0), np.full(20, 140.0), 2.5, 30.0, tracking_lag_ticks=3.0)
    lagged = ClientConfig(strategy=strategy_config("vlash_rail"))
    settings, why = latency_settings(lat, lagged)
    assert settings["strategy"]["state_lag_ticks"] == 4 and any("state_lag_ticks=4" in w for w in why)
    plain = ClientConfig(strategy=strategy_config("rail"))
    assert "state_lag_ticks" not in latency_settings(lat, plain)[0]["strategy"]
    unmeasured = Latencies(rtt, np.full(20, 150.0), np.full(20, 140.0), None, 30.0)
    assert "state_lag_ticks" not in latency_settings(unmeasured, lagged)[0]["strategy"]
