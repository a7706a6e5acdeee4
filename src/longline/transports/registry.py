"""The transport registry: stream ``transport:`` names to their ``TransportKind``.

Kinds are entry points in the ``longline.transports`` group (``longline.plugins``): ``sse``,
``ws`` and ``lines`` are longline's own, declared like a plugin's. The config validates a
stream's ``url`` and ``options`` against the kind it names, and the supervisor asks the kind
for each connection, so no other module knows the transport names.
"""

from __future__ import annotations

from longline.plugins import Registry
from longline.transports.base import ConnectSpec, NoOptions, TransportKind

__all__ = ["REGISTRY", "ConnectSpec", "NoOptions", "TransportKind"]

REGISTRY: Registry[TransportKind] = Registry(
    "longline.transports", "transport", TransportKind, lambda kind: kind.name
)
"""Every transport by name: longline's own, then those of installed plugins."""
