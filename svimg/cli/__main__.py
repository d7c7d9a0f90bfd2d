"""``python -m svimg.cli`` runs the ``svimg`` command line."""

from . import console

console()
