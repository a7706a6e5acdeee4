"""Deliberately plain baselines that longline's figures are divided by.

- ``raw_receive``: the receive ceiling (aiohttp, same feeds, JSON decoded, nothing stored).
- ``raw_sqlite``: the store ceiling (``INSERT OR IGNORE`` in batches of 1000, one thread, WAL).
- ``naive_loop``: the seed's shape (read, parse, one commit per event).
"""
