"""qwatch: find job queues that only grow and are never read."""

__version__ = "0.1.0"
