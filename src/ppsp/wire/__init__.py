"""The wire model: the typed messages both protocols carry, and every field rule and bound once.

Layer: sans-I/O, the bottom one. May import only the standard library's pure modules,
``ppsp.errors`` and other ``ppsp.wire`` modules; no asyncio, aiohttp, socket, threading, clock
reads, and nothing of ``ppsp.codecs``, ``ppsp.tracker``, ``ppsp.peer``, ``ppsp.app`` or ``ppsp.lab``
(tests/test_layers.py enforces this).
"""
