"""Allow ``python -m cems`` as an alias of the ``cems`` console script."""

import sys

from cems.cli import main

sys.exit(main())
