"""PPSP tracker: messages, codecs, sans-I/O core, storage and the HTTP server."""
