"""``python -m ppsp`` runs the command-line interface."""

from ppsp.app.cli import main

main()
