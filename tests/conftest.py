"""Shared test set-up: each backend's fixtures live in their own module."""

pytest_plugins = [
    "fixtures_redis",
    "fixtures_rabbit",
    "fixtures_starling",
]
