"""``python -m ppsp`` runs the command-line interface."""

from ppsp.app.launch import run

run()
