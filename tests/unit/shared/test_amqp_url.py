"""AMQP_URL's connection options, read by pika: one it cannot read is a configuration error naming the variable."""
from __future__ import annotations

import pytest

from erp_sync.shared.amqp_url import amqp_parameters
from erp_sync.shared.errors import ConfigurationError


@pytest.mark.parametrize(("url", "named"), [
    ("amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=abc", "Invalid heartbeat value 'abc'"),
    ("amqp://guest:guest@127.0.0.1:5672/%2F?hartbeat=30", "Unknown URL parameter: 'hartbeat'"),
    ("amqp://guest@127.0.0.1:5672/%2F", "a user name needs a password"),
])
def test_options_pika_cannot_read_stop_with_one_line_naming_amqp_url(url, named):
    with pytest.raises(ConfigurationError) as caught:
        amqp_parameters(url)

    message = str(caught.value)
    assert message.startswith("AMQP_URL: ") and named in message
    assert "\n" not in message


def test_options_pika_reads_are_kept():
    parameters = amqp_parameters("amqps://user:pw@rabbit.example/shop?heartbeat=30")

    assert (parameters.host, parameters.port, parameters.virtual_host, parameters.heartbeat) == (
        "rabbit.example", 5671, "shop", 30)
