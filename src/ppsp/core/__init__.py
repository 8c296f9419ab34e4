"""Sans-I/O building blocks that are neither messages nor codecs (token buckets, rates, hosts).

Layer: sans-I/O.  May import ``ppsp.wire`` and ``ppsp.errors`` only (tests/test_layers.py).
"""
