"""imagebuilder-watcher: watch EC2 Image Builder builds and report their state changes."""

from watcher._version import __version__
from watcher.clock import Clock, SystemClock

__all__ = ["Clock", "SystemClock", "__version__"]
