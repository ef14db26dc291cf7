"""``python -m safecity`` runs the CLI."""

from safecity.cli import main

main()
