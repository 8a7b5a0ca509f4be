"""Settings.from_env: every TASKTRAIL_* variable, the defaults, and clear errors."""

from __future__ import annotations

import dataclasses

import pytest

from tasktrail.errors import ConfigurationError
from tasktrail.settings import DEFAULT_DATABASE_URL, Settings

EVERY_VARIABLE = {
    "TASKTRAIL_DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
    "TASKTRAIL_HOST": "127.0.0.2",
    "TASKTRAIL_PORT": "9001",
    "TASKTRAIL_WORKERS": "0",
    "TASKTRAIL_WORKER_PROCESSES": "3",
    "TASKTRAIL_API_TOKEN": "tok",
    "TASKTRAIL_ADMIN_TOKEN": "adm",
    "TASKTRAIL_MAX_BODY_BYTES": "1024",
    "TASKTRAIL_LEASE_SECONDS": "2.5",
    "TASKTRAIL_PROGRESS_INTERVAL_SECONDS": "0.5",
    "TASKTRAIL_POLL_SECONDS": "0.25",
    "TASKTRAIL_SSE_PING_SECONDS": "3",
    "TASKTRAIL_SSE_RETRY_MS": "500",
    "TASKTRAIL_SSE_MAX_CONNECTION_SECONDS": "60",
    "TASKTRAIL_SSE_RING_SIZE": "50",
    "TASKTRAIL_SSE_QUEUE_SIZE": "7",
    "TASKTRAIL_READINESS_MAX_LAG": "9",
    "TASKTRAIL_UNIVERSE_BATCH_DELAY_SECONDS": "0",
    "TASKTRAIL_CSV_ROOT": "data",
    "TASKTRAIL_RETENTION_DAYS": "5",
    "TASKTRAIL_ARCHIVE_DIR": "arch",
    "TASKTRAIL_SEED_EXAMPLES": "no",
    "TASKTRAIL_LOG_LEVEL": "debug",
}


def test_an_empty_environment_gives_the_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert (settings.host, settings.port, settings.api_token) == ("127.0.0.1", 8000, None)


def test_every_variable_is_read_and_typed() -> None:
    settings = Settings.from_env(EVERY_VARIABLE)
    assert settings == Settings(
        database_url="postgresql://u@127.0.0.1:5432/db",
        host="127.0.0.2",
        port=9001,
        workers=0,
        worker_processes=3,
        api_token="tok",
        admin_token="adm",
        max_body_bytes=1024,
        lease_seconds=2.5,
        progress_interval_seconds=0.5,
        poll_seconds=0.25,
        sse_ping_seconds=3.0,
        sse_retry_ms=500,
        sse_max_connection_seconds=60.0,
        sse_ring_size=50,
        sse_queue_size=7,
        readiness_max_lag=9,
        universe_batch_delay_seconds=0.0,
        csv_root="data",
        retention_days=5,
        archive_dir="arch",
        seed_examples=False,
        log_level="debug",
    )


def test_settings_as_variables_read_back_as_the_same_settings() -> None:
    """What serve hands its worker processes (``Settings.environment``)."""
    every = Settings.from_env(EVERY_VARIABLE)
    assert Settings.from_env(every.environment()) == every
    assert every.environment()["TASKTRAIL_SEED_EXAMPLES"] == "false"
    odd = Settings(lease_seconds=0.1 + 0.2, api_token=None)  # a float with a long repr
    assert Settings.from_env(odd.environment()) == odd
    assert "TASKTRAIL_API_TOKEN" not in odd.environment()


def test_the_table_above_names_every_field() -> None:
    names = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    assert {"TASKTRAIL_" + n.upper() for n in names} == set(EVERY_VARIABLE)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("TRUE", True), (" on ", True), ("0", False), ("off", False)]
)
def test_booleans_accept_the_usual_words(raw: str, expected: bool) -> None:
    assert Settings.from_env({"TASKTRAIL_SEED_EXAMPLES": raw}).seed_examples is expected


def test_flags_override_the_environment_and_none_leaves_it() -> None:
    env = {"TASKTRAIL_PORT": "9001", "TASKTRAIL_HOST": "127.0.0.3"}
    settings = Settings.from_env(env, port=9100, host=None)
    assert (settings.port, settings.host) == (9100, "127.0.0.3")


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("TASKTRAIL_PORT", "eighty", "TASKTRAIL_PORT='eighty' is not a int"),
        ("TASKTRAIL_LEASE_SECONDS", "soon", "TASKTRAIL_LEASE_SECONDS='soon' is not a float"),
        ("TASKTRAIL_SEED_EXAMPLES", "maybe", "TASKTRAIL_SEED_EXAMPLES='maybe' is not a bool"),
        ("TASKTRAIL_DATABASE_URL", "mysql://x/y", "unsupported database URL"),
        ("TASKTRAIL_WORKERS", "-1", "workers must be 0 or more"),
        ("TASKTRAIL_PORT", "70000", "port must be between 0 and 65535"),
        ("TASKTRAIL_LEASE_SECONDS", "0", "lease_seconds must be positive"),
        ("TASKTRAIL_POLL_SECONDS", "nan", "poll_seconds must be positive"),
        ("TASKTRAIL_SSE_QUEUE_SIZE", "0", "sse_queue_size must be positive"),
        ("TASKTRAIL_MAX_BODY_BYTES", "-5", "max_body_bytes must be positive"),
        ("TASKTRAIL_RETENTION_DAYS", "-1", "retention_days must be 0 or more"),
        (
            "TASKTRAIL_UNIVERSE_BATCH_DELAY_SECONDS",
            "-0.1",
            "universe_batch_delay_seconds must be 0 or more",
        ),
    ],
)
def test_a_bad_value_is_a_configuration_error_naming_it(
    variable: str, raw: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        Settings.from_env({variable: raw})
