"""Content: self-certifying descriptions, swarm IDs, chunk hashes and Merkle trees.

Layer: sans-I/O (see ``ppsp.peer``).  Reading and writing files is ``ppsp.peer.net.chunkstore``.
"""
