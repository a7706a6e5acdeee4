"""Delivery: hand stored events to processors (outbox cursors, retries, dead letters)."""
