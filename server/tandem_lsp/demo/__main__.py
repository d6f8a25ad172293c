"""``python -m tandem_lsp.demo``: the same as ``tandem-lsp demo``."""

import sys

from tandem_lsp.demo import main

sys.exit(main())
