"""callworker: event-driven call control for FreeSWITCH over RabbitMQ."""

__version__ = "0.1.0"
