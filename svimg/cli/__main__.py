"""``python -m svimg.cli`` runs the ``svimg`` command line."""

import sys

from . import main

sys.exit(main())
