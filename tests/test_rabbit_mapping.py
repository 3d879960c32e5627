"""Pure parts of the RabbitMQ adapter: target URLs, rows to samples, properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiormq import spec
from qwatch.adapters import adapter_for
from qwatch.adapters.base import TargetError
from qwatch.adapters.rabbitmq import RabbitAdapter
from qwatch.adapters.rabbitmq_props import properties_from_json, properties_to_json
from qwatch.adapters.rabbitmq_purge import is_one_off
from qwatch.adapters.rabbitmq_samples import idle_seconds, sample_from
from qwatch.adapters.rabbitmq_target import RabbitTarget, target_options


@pytest.mark.parametrize(
    ("url", "options", "vhost", "api"),
    [
        ("amqp://u:p@h:5672/prod", {}, "prod", "http://h:15672"),
        ("amqp://h", {}, None, "http://h:15672"),
        ("amqp://h/", {}, None, "http://h:15672"),
        ("amqp://h/%2f", {}, "/", "http://h:15672"),
        ("amqps://h:5671/a%2Fb", {}, "a/b", "https://h:15671"),
        ("amqp://h/x", {"vhost": "y"}, "y", "http://h:15672"),
        ("amqp://h", {"management_url": "https://m:443/"}, None, "https://m:443"),
    ],
)
def test_target_vhost_and_management_url(
    url: str, options: dict[str, str], vhost: str | None, api: str
) -> None:
    """The vhost comes from the path (none means all) and the API is derived."""
    target = RabbitTarget.parse(url, options)
    assert (target.vhost, target.management_url) == (vhost, api)


def test_target_credentials_and_amqp_url() -> None:
    """Credentials are unquoted for use and quoted again in vhost URLs."""
    target = RabbitTarget.parse("amqp://us%40r:p%3Ass@h:5673", {})
    assert (target.user, target.password, target.port) == ("us@r", "p:ss", 5673)
    assert target.amqp_url("/") == "amqp://us%40r:p%3Ass@h:5673/%2F"


def test_names_are_bare_in_one_vhost_and_qualified_across_vhosts() -> None:
    """Across vhosts a queue is ``vhost/queue``, except in the default vhost."""
    every = RabbitTarget.parse("amqp://h", {})
    assert every.name_of("/", "jobs") == "jobs"
    assert every.name_of("shop", "jobs") == "shop/jobs"
    assert every.split("shop/jobs") == ("shop", "jobs")
    assert every.split("jobs") == ("/", "jobs")
    one = RabbitTarget.parse("amqp://h/shop", {})
    assert one.name_of("shop", "a/b") == "a/b"
    assert one.split("a/b") == ("shop", "a/b")


def target(url: str, options: dict[str, object] | None = None) -> RabbitTarget:
    return RabbitTarget.parse(url, target_options(url, options or {}))


def test_management_url_can_come_from_the_url_query() -> None:
    """A command line alone can point at a management API elsewhere."""
    url = "amqp://u:p@h/shop?management_url=http://m:8080/&heartbeat=30"
    found = target(url)
    assert (found.vhost, found.management_url) == ("shop", "http://m:8080")
    # qwatch's own keys stay out of the AMQP URL; aio-pika's pass through
    assert found.amqp_url("shop") == "amqp://u:p@h:5672/shop?heartbeat=30"


def test_config_options_win_over_the_url_query() -> None:
    """options in qwatch.toml are the explicit choice, so they win."""
    url = "amqp://h?management_url=http://q:1&page_size=50"
    found = target_options(url, {"management_url": "http://o:2"})
    assert found == {"management_url": "http://o:2", "page_size": 50}


def test_query_values_are_typed() -> None:
    """Numbers, flags and queue lists in the query arrive typed."""
    url = "amqp://h?queues=a,b&stats_interval=10&verify_tls=false"
    assert target_options(url, {}) == {
        "queues": ["a", "b"],
        "stats_interval": 10.0,
        "verify_tls": False,
    }


def test_tls_settings_reach_both_amqp_and_http() -> None:
    """cafile and no_verify_ssl are aio-pika's keys; httpx gets a context."""
    found = target("amqps://h/v?no_verify_ssl=1&cafile=/etc/ca.pem")
    assert found.verify_tls is False
    assert found.management_url == "https://h:15671"
    assert found.amqp_url("v") == (
        "amqps://guest:guest@h:5671/v?cafile=%2Fetc%2Fca.pem&no_verify_ssl=1"
    )
    assert target("amqps://h").http_verify() is True


@pytest.mark.parametrize(
    ("url", "options", "words"),
    [
        ("amqp://h?page_size=0", {}, "page_size"),
        ("amqp://h?stats_interval=soon", {}, "stats_interval"),
        ("amqp://h?verify_tls=maybe", {}, "verify_tls"),
        ("amqp://h", {"management_url": "ftp://x:y@m"}, "management_url"),
    ],
)
def test_bad_settings_are_one_clear_error(
    url: str, options: dict[str, object], words: str
) -> None:
    """A bad value names its key in one line and never shows a password."""
    with pytest.raises(TargetError, match=words) as caught:
        RabbitAdapter(url, options)
    assert "\n" not in str(caught.value) and "y@" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://h", "amqp://", "amqp://h:notaport"])
def test_bad_target_is_one_clear_error(url: str) -> None:
    """A malformed URL raises TargetError with one line, not a traceback."""
    with pytest.raises(TargetError) as caught:
        RabbitAdapter(url)
    assert "\n" not in str(caught.value)


def test_scheme_registry_finds_the_adapter() -> None:
    """amqp:// and amqps:// resolve to RabbitAdapter with a masked label."""
    adapter = adapter_for("amqps://me:secret@h/v")
    assert isinstance(adapter, RabbitAdapter)
    assert "secret" not in adapter.label
    assert adapter.suggested_interval(1.0) == 5.0


ROW = {
    "name": "jobs",
    "vhost": "/",
    "type": "classic",
    "durable": True,
    "auto_delete": False,
    "exclusive": False,
    "arguments": {"x-dead-letter-exchange": "dlx"},
    "effective_policy_definition": {},
    "messages": 12,
    "messages_ready": 10,
    "messages_unacknowledged": 2,
    "message_bytes": 345,
    "consumers": 1,
    "message_stats": {
        "publish": 100,
        "publish_details": {"rate": 2.5},
        "ack": 80,
        "ack_details": {"rate": 2.0},
        "deliver_no_ack": 5,
        "get_no_ack": 3,
    },
}


def test_row_maps_depth_counters_and_rates() -> None:
    """depth = ready + unacked; out counts acks and no-ack takes only."""
    sample = sample_from(ROW, "jobs", 0.0, stats=True)
    assert (sample.depth, sample.unacked, sample.consumers) == (12, 2, 1)
    assert (sample.total_in, sample.total_out) == (100, 88)
    assert (sample.rate_in, sample.rate_out) == (2.5, 2.0)
    assert not sample.bounded
    assert sample.info is not None
    assert sample.info["dead_letter"] == {"x-dead-letter-exchange": "dlx"}


@pytest.mark.parametrize(
    ("args", "policy", "bounded", "ttl"),
    [
        ({}, {}, False, None),
        ({"x-expires": 30000}, {}, True, 30.0),
        ({"x-message-ttl": 1000}, {}, True, None),
        ({}, {"max-length": 10}, True, None),
        ({}, {"expires": 5000}, True, 5.0),
    ],
)
def test_bounds_from_arguments_and_policy(
    args: dict[str, int], policy: dict[str, int], bounded: bool, ttl: float | None
) -> None:
    """x-expires, message TTL and max-length (or their policy keys) bound it."""
    row = {"name": "q", "arguments": args, "effective_policy_definition": policy}
    sample = sample_from(row, "q", 0.0, stats=True)
    assert (sample.bounded, sample.ttl) == (bounded, ttl)


def test_missing_stats_mean_zero_when_rates_are_on_and_unknown_when_off() -> None:
    """A queue nothing flowed through yet has no message_stats at all."""
    row = {"name": "q", "messages": 0}
    assert sample_from(row, "q", 0.0, stats=True).total_in == 0
    assert sample_from(row, "q", 0.0, stats=False).total_in is None


def test_idle_since_reads_both_formats() -> None:
    """ISO with offset (3.10+) and the older naive UTC form."""
    now = datetime(2024, 1, 1, 12, 0, 10, tzinfo=UTC).timestamp()
    assert idle_seconds("2024-01-01T12:00:00.000+00:00", now) == 10.0
    assert idle_seconds("2024-01-01 12:00:00", now) == 10.0
    assert idle_seconds(None, now) is None


def test_properties_survive_json_exactly() -> None:
    """Headers with bytes, times and decimals come back equal after JSON."""
    props = spec.Basic.Properties(
        content_type="application/json",
        headers={
            "b": bytearray(b"\x00\xff"),
            "t": datetime(2024, 1, 1, tzinfo=UTC),
            "d": Decimal("1.25"),
            "n": [1, "x", {"k": True}],
        },
        delivery_mode=2,
        timestamp=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        expiration="60000",
        message_type="task",
    )
    saved = json.loads(json.dumps(properties_to_json(props)))
    back = properties_from_json(saved)
    for name in (
        "content_type",
        "headers",
        "delivery_mode",
        "timestamp",
        "expiration",
        "message_type",
        "priority",
        "message_id",
    ):
        assert getattr(back, name) == getattr(props, name), name


@pytest.mark.parametrize(
    ("queue", "one_off"),
    [
        ("celery", False),
        ("orders.created", False),
        ("result.6f1c0a9e8b7d6c5f4e3d2c1b0a998877", True),
        ("rpc.reply-0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("amq.gen-JzTY20BRgKO-HjmUJj0wLg", True),
    ],
)
def test_one_off_queue_names(queue: str, one_off: bool) -> None:
    """Purge deletes id-named queues and only empties fixed-name ones."""
    assert is_one_off(queue) is one_off


@pytest.mark.parametrize(
    ("url", "options", "seconds"),
    [
        ("amqp://h?stats_interval=1s", {}, 1.0),
        ("amqp://h?stats_interval=500ms", {}, 0.5),
        ("amqp://h", {"stats_interval": "2m"}, 120.0),
        ("amqp://h", {"stats_interval": 10}, 10.0),
    ],
)
def test_stats_interval_reads_durations_like_the_rest_of_qwatch(
    url: str, options: dict[str, object], seconds: float
) -> None:
    """'1s' used to fail with "could not convert string to float"."""
    adapter = RabbitAdapter(url, options)
    assert adapter.stats_interval == seconds
    assert adapter.suggested_interval(0.1) == seconds


@pytest.mark.parametrize(
    ("url", "options", "fault"),
    [
        (
            "amqp://h",
            {"stats_intervall": "1s"},
            "options.stats_intervall: unknown key; did you mean 'stats_interval'?",
        ),
        (
            "amqp://h?stats_intervall=1s",
            {},
            "query key 'stats_intervall': unknown; did you mean 'stats_interval'?",
        ),
        (
            "amqp://h?heartbaet=30",
            {},
            "query key 'heartbaet': unknown; did you mean 'heartbeat'?",
        ),
        (
            "amqp://h",
            {"heartbeat": 30},
            "options.heartbeat: unknown key; known: cafile, certfile, keyfile, "
            "management_url, page_size, queues, stats_interval, verify_tls, vhost",
        ),
        (
            "amqp://h",
            {"stats_interval": "-1s"},
            "options.stats_interval: '-1s' is not a duration; try 60s, 2m or 1h",
        ),
        (
            "amqp://h",
            {"page_size": 0},
            "options.page_size: expected a whole number >= 1, got 0",
        ),
        (
            "amqp://h",
            {"queues": [1, 2]},
            "options.queues: expected a list of names, got [1, 2]",
        ),
        (
            "amqp://h?heartbeat=often",
            {},
            "query key 'heartbeat': expected a whole number >= 0, got 'often'",
        ),
    ],
)
def test_unknown_keys_and_bad_values_are_named(
    url: str, options: dict[str, object], fault: str
) -> None:
    """No key is silently ignored, in the options or in the URL."""
    with pytest.raises(TargetError) as caught:
        RabbitAdapter(url, options)
    assert str(caught.value) == f"{url}: {fault}"
