"""Where transitions go. A sink has one method, `async send(event)`."""

from watcher.sinks.base import Sink
from watcher.sinks.log import LogSink

__all__ = ["LogSink", "Sink"]
