"""systemd's service notification protocol (``sd_notify``), for ``Type=notify`` units.

The protocol is one datagram per message to the AF_UNIX socket named by ``$NOTIFY_SOCKET``
(a leading ``@`` means the abstract namespace). ``READY=1`` says the service is up; with
``WatchdogSec=`` set, systemd passes ``$WATCHDOG_USEC`` and restarts the service unless it
hears ``WATCHDOG=1`` within that time. The pings are sent from the event loop itself, so a loop
that is blocked (or a process that hangs) stops them and gets restarted. Without
``$NOTIFY_SOCKET`` (not under systemd) every call here does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

__all__ = ["notify", "watchdog", "watchdog_interval"]

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send ``message`` (``READY=1``, ``STOPPING=1``, ``STATUS=...``); False when there is no
    socket to send to or sending failed (logged: a notification is never worth a crash)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as e:
        log.warning("could not notify systemd (%s): %s", message.split("=", 1)[0], e.strerror)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (systemd's advice), or None when no watchdog is
    asked of this process (``$WATCHDOG_PID`` names another one)."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2_000_000


async def watchdog() -> None:
    """Ping the watchdog every ``watchdog_interval()`` until cancelled; returns at once when
    there is no watchdog."""
    interval = watchdog_interval()
    if interval is None or not os.environ.get("NOTIFY_SOCKET"):
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
