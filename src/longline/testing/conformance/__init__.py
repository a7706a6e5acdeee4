"""Conformance suites a kind's author runs against their own kind, built-in or plugin.

``processors.ProcessorConformance`` and ``transports.TransportConformance`` are pytest test
classes: subclass one in a test module (name it ``Test...``) and give it a ``harness`` fixture
that drives your kind against a real server (see docs/plugins.md). longline runs both suites
on each of its own kinds and on the example plugin in its own tests.
"""
