"""The reliability campaign: make faults happen to `longline run` for real, audit every event.

Run ``python -m reliability`` (CI-sized) or ``python -m reliability --full``; see
docs/reliability.md.
"""
