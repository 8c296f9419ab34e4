"""PPSP peers: the peer protocol, content and its integrity, piece selection, live streaming.

Layer: sans-I/O in ``protocol``, ``content``, ``download``, ``live`` and ``upload``: they may
import ``ppsp.wire``, ``ppsp.codecs``, ``ppsp.core``, ``ppsp.errors`` and each other, but no
asyncio, aiohttp, socket, threading or clock reads (time is passed in).  ``ppsp.peer.net`` is
their I/O (tests/test_layers.py enforces the split).
"""
