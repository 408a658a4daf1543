"""flowd: durable event-triggered workflow automation on one machine."""

__version__ = "0.1.0"
