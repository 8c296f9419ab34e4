"""The commands users run: the command line, seed/get/watch/live, players, the demos.

Layer: application.  May import every other layer except ``ppsp.lab``.
"""
