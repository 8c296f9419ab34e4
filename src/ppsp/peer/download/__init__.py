"""What to fetch and from whom: piece selection for stored and live content.

Layer: sans-I/O (see ``ppsp.peer``).
"""
