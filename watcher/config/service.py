"""The daemon's own settings: `[delivery]` retries, the `[server]` for probes and
metrics, and the `[shutdown]` grace."""

from __future__ import annotations

from pydantic import field_validator

from watcher.config._base import PositiveDuration, Strict


class DeliveryConfig(Strict):
    """How the outbox retries a sink that did not acknowledge an event."""

    backoff_base: PositiveDuration = 1.0
    backoff_cap: PositiveDuration = 300.0
    retry_after_cap: PositiveDuration = 3600.0
    max_age: PositiveDuration = 86400.0


class ServerConfig(Strict):
    """The HTTP endpoint for probes and Prometheus."""

    listen: str = "127.0.0.1:9108"
    """host:port for /healthz, /readyz and /metrics; "0.0.0.0:9108" in a container."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port such as 127.0.0.1:9108, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class ShutdownConfig(Strict):
    grace: PositiveDuration = 20.0
    """On SIGTERM/SIGINT polling stops at once; pending deliveries get this long."""
