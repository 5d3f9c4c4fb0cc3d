"""`python -m erp_sync.cli`: the console script without its installed wrapper."""
from __future__ import annotations

import sys

from erp_sync.cli import main

sys.exit(main())
