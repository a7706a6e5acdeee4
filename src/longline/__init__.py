"""longline: capture outbound event streams durably, exactly once."""

__version__ = "0.1.0"
