"""emonk-gateway: the Python client of the emonkd gateway.

- ``Client``: asyncio operator (or agent) connection: ``call``, ``stream``, ``events``.
- ``Agent``: the agent behind the gateway: ``@agent.method("agent.chat")``,
  ``@agent.on_message``, ``@agent.on_action``, ``await agent.run()``.
- ``GatewayError``, ``GatewayClosed``: error answers and lost links; timeouts raise
  the builtin ``TimeoutError``.
- ``emonk_gateway.sync.Client``: ``call`` and ``stream`` for blocking scripts.

The protocol is described in ``emonkd-protocol(7)``. Log records go to the
``emonk_gateway`` logger; the library never configures logging itself.
"""

from ._methods import Final
from ._version import __version__
from .agent import Agent
from .client import Client
from .errors import GatewayClosed, GatewayError
from .frames import PROTOCOL_VERSION, Event

__all__ = [
    "PROTOCOL_VERSION",
    "Agent",
    "Client",
    "Event",
    "Final",
    "GatewayClosed",
    "GatewayError",
    "__version__",
]
