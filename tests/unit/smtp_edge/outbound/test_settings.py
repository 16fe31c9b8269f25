"""The worker's settings: flag > TIDINGS_* environment > default, checked at start."""
from __future__ import annotations

import pytest

from smtp_edge.outbound.delivery import Relay
from smtp_edge.outbound.settings import Settings
from tidings_runtime.settings import SettingsError

MIN = 60_000


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TIDINGS_DNS", "TIDINGS_OUTBOUND_PORT", "TIDINGS_RETRY_SCHEDULE", "TIDINGS_QUEUE_LIFETIME",
                 "TIDINGS_RELAYHOST"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.parse([])
    assert settings.resolvers is None and settings.outbound_port == 25 and settings.relay is None
    assert settings.schedule.waits_ms[:2] == (2 * MIN, 5 * MIN) and settings.schedule.wait_ms(99) == 120 * MIN
    assert settings.lifetime_ms == 5 * 24 * 60 * MIN
    assert settings.timeouts.data == 600 and settings.metrics_port == 9106


def test_flag_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_DNS", "127.0.0.1:5353,127.0.0.2:53")
    monkeypatch.setenv("TIDINGS_OUTBOUND_PORT", "2526")
    monkeypatch.setenv("TIDINGS_RELAYHOST_PASSWORD", "hunter2")
    settings = Settings.parse(["--outbound-port", "2527", "--relayhost", "127.0.0.1:587", "--relayhost-user", "u",
                               "--retry-schedule", "30s,1m", "--queue-lifetime", "1h", "--timeout-scale", "0.01",
                               "--no-metrics"])
    assert settings.resolvers == [("127.0.0.1", 5353), ("127.0.0.2", 53)]
    assert settings.outbound_port == 2527
    assert settings.relay == Relay("127.0.0.1", 587, "u", "hunter2")
    assert settings.schedule.waits_ms == (30_000, MIN) and settings.lifetime_ms == 60 * MIN
    assert settings.timeouts.connect == pytest.approx(0.3) and settings.metrics_port is None


@pytest.mark.parametrize("argv", [["--dns", "resolver.example:53"], ["--retry-schedule", "soon"],
                                  ["--queue-lifetime", "0s"], ["--relayhost", "nohost"], ["--lease-s", "0"]])
def test_bad_values_are_refused_naming_the_setting(argv: list[str]) -> None:
    with pytest.raises(SettingsError, match=argv[0]):
        Settings.parse(argv)

