"""Transports of the harness: implementations of ``backpack.transport.Transport`` that record or replay."""
