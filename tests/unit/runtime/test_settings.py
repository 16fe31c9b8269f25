"""The one settings system: flag > TIDINGS_* environment > default for every process,
one meaning of metrics, and validation at start (exit 2 with the setting named)."""
from __future__ import annotations

from pathlib import Path

import pytest

from http_edge.settings import Settings as HttpSettings
from router.settings import Settings as RouterSettings
from smtp_edge.config import Settings as SmtpSettings
from storage_node.blobs import LocalBlobStore, blob_store
from storage_node.settings import Settings as StorageSettings
from tidings_cli.settings import CliSettings
from tidings_runtime.settings import SETTINGS_EXIT_CODE, SettingsError, TidingsSettings

SECRET = "s" * 32


@pytest.fixture(autouse=True)
def token_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_TOKEN_SECRET", SECRET)  # so the HTTP edge writes no secret file


def test_flag_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert StorageSettings.parse([]).blob_dir == Path("var/blobs")
    monkeypatch.setenv("TIDINGS_BLOB_DIR", str(tmp_path / "env"))
    assert StorageSettings.parse([]).blob_dir == tmp_path / "env"
    flagged = StorageSettings.parse(["--blob-dir", str(tmp_path / "flag")])
    assert flagged.blob_dir == tmp_path / "flag"
    store = blob_store(flagged.blob_dir, flagged)
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "flag"


def test_constructor_arguments_are_the_highest_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_HINT_INTERVAL_S", "7")
    assert StorageSettings().hint_interval_s == 7
    assert StorageSettings(hint_interval_s=0.5).hint_interval_s == 0.5


def test_router_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_DOMAINS", "a.test, b.test")
    monkeypatch.setenv("TIDINGS_N", "5")
    settings = RouterSettings.parse(["-w", "3", "-r", "3", "--nodes", "1=127.0.0.1:1@z,2=127.0.0.1:2"])
    assert (settings.n, settings.w, settings.r, settings.domains) == (5, 3, 3, ["a.test", "b.test"])
    assert [(n.node_id, n.address, n.zone) for n in settings.ring_nodes] == [
        ("1", "127.0.0.1:1", "z"), ("2", "127.0.0.1:2", "zone-2")]
    monkeypatch.delenv("TIDINGS_N")
    assert RouterSettings.parse(["--domain", "x.test", "--domain", "y.test"]).domains == ["x.test", "y.test"]


@pytest.mark.parametrize(("argv", "problem"), [
    (["-w", "1"], "R + W (2 + 1) must exceed N (3)"),
    (["-w", "4"], "must not exceed N (3)"),
    (["-n", "3", "-r", "4", "-w", "3"], "must not exceed N (3)"),
    (["--timeout", "0"], "--timeout (env TIDINGS_QUORUM_TIMEOUT): Input should be greater than 0"),
    (["--listen", "127.0.0.1:70000"], "--listen (env TIDINGS_ROUTER_LISTEN)"),
    (["--nodes", "1=nowhere"], "--nodes (env TIDINGS_NODES)"),
    (["--anti-entropy-interval", "-1"], "--anti-entropy-interval"),
])
def test_router_refuses_bad_settings(argv: list[str], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        RouterSettings.parse(argv)


@pytest.mark.parametrize("settings_class", [StorageSettings, RouterSettings, SmtpSettings, HttpSettings])
def test_metrics_mean_one_thing_everywhere(settings_class: type[TidingsSettings],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_class.parse(["--metrics-port", "0"]).metrics_port == 0  # type: ignore[attr-defined]
    assert settings_class.parse(["--metrics-port", "9999"]).metrics_port == 9999  # type: ignore[attr-defined]
    assert settings_class.parse(["--no-metrics"]).metrics_port is None  # type: ignore[attr-defined]
    env = settings_class.model_fields["metrics_port"].validation_alias
    assert isinstance(env, str)
    monkeypatch.setenv(env, "")
    assert settings_class.parse([]).metrics_port is None  # type: ignore[attr-defined]
    with pytest.raises(SettingsError, match="less than or equal to 65535"):
        settings_class.parse(["--metrics-port", "65536"])


@pytest.mark.parametrize(("settings_class", "argv"), [
    (SmtpSettings, ["--port", "-1"]), (SmtpSettings, ["--deliver-timeout", "0"]),
    (HttpSettings, ["--rpc-timeout", "-2"]), (HttpSettings, ["--token-ttl", "0"]),
    (StorageSettings, ["--tombstone-grace-s", "0"]), (StorageSettings, ["--node-id", ""]),
])
def test_each_process_validates_at_start(settings_class: type[TidingsSettings], argv: list[str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        settings_class.load(argv)
    assert exited.value.code == SETTINGS_EXIT_CODE
    assert argv[0] in capsys.readouterr().err


def test_cli_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert CliSettings().router == "127.0.0.1:7000"
    monkeypatch.setenv("TIDINGS_ROUTER", "127.0.0.2:7000")
    monkeypatch.setenv("TIDINGS_VAR", str(tmp_path))
    assert (CliSettings().router, CliSettings().base_dir) == ("127.0.0.2:7000", tmp_path)
