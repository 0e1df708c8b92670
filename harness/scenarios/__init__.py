"""Fault scenarios: programs of faults over recordings, a reference oracle, invariants and their runners.

``program`` (fault programs as JSON and ``apply``), ``oracle`` (the clean recording's truth),
``invariants`` (what must hold, checked as a run goes), ``runner`` (the core and the full feed),
``transport`` (the exchange a faulted full-feed replay talks to), ``sockets`` (real sockets through the
loopback server), ``strategies`` (hypothesis), ``machine`` (a stateful test of the core). See
``docs/scenarios.md``.
"""
