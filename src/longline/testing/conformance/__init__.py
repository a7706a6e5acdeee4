"""Conformance suites a kind's author runs against their own kind, built-in or plugin.

``processors.ProcessorConformance``, ``transports.TransportConformance`` and
``stores.StoreConformance`` are pytest test classes: subclass one in a test module (name it
``Test...``) and give it a ``harness`` fixture that drives your kind against a real server, or
for a store a ``store_url`` fixture (see docs/plugins.md). longline runs the suites on each of
its own kinds and on the example plugin in its own tests.
"""
