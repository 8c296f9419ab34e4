"""PPSP tracker: the sans-I/O service (state machines, peer lists, bounds, tokens, storage).

Layer: sans-I/O.  ``ppsp.tracker`` and ``ppsp.tracker.storage`` (the interface and the memory
backend) may import ``ppsp.wire``, ``ppsp.codecs``, ``ppsp.core`` and ``ppsp.errors``; no asyncio,
aiohttp, socket, threading or clock reads (time is passed in).  The I/O around it, the HTTP
server and client, the Redis backend and the worker processes, is ``ppsp.tracker.net``
(tests/test_layers.py enforces the split).
"""
