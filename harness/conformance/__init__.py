"""A conformance suite for any Backpack client: numbered cases served over real loopback sockets.

``catalog`` loads the cases (data: ``cases/*.yaml``), ``clients`` holds the adapters of the clients under
test, ``run`` plays one case to one client and ``judge`` gives the verdict with its evidence;
``report`` writes ``index.html``, a page per case and client, and ``results.json``. See docs/conformance.md.
"""
