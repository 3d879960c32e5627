"""A Starling-speaking server, its Workling workload and a small async client.

``python -m qwatch.starling --port N`` runs the server from the command line.
"""

from qwatch.starling.background import ServerThread
from qwatch.starling.server import StarlingServer

__all__ = ["ServerThread", "StarlingServer"]
