"""RabbitMQ fixtures (filled in by the RabbitMQ adapter work)."""
