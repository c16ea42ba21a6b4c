"""``python -m callworker`` is the ``callworker`` command."""

import sys

from callworker.cli import main

sys.exit(main())
