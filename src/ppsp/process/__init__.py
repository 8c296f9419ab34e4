"""Process-level utilities of the long-running commands: stop signals, runtime tuning.

Layer: I/O helpers.  May import the standard library only (and ``ppsp.errors``).
"""
