"""``python -m ppsp`` runs the command-line interface."""

from ppsp.cli import main

main()
