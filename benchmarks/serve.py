"""Entry point of the provider subprocess: ``longline provider`` with a raised fd limit.

10 000 idle WebSocket streams need more descriptors than many shells allow by default; the
provider is otherwise exactly ``python -m longline provider``.
"""

from __future__ import annotations

import os
import resource
import threading
import time

from longline.cli.provider import provider_command


def raise_fd_limit(wanted: int = 65_536) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (capped by the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def exit_with_parent() -> None:
    """End this process when the harness that started it dies (no orphaned providers)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    raise_fd_limit()
    exit_with_parent()
    provider_command()
