"""``python -m rep_align.cli``: the ``rep-align`` command."""

import sys

from rep_align.cli import main

sys.exit(main())
