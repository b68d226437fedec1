"""``python -m app.simulate``: the contract's simulator command (contract section 7).

The simulator lives in :mod:`app.tools.simulate`; this module keeps the command's name.
"""

from __future__ import annotations

import sys

from app.tools.simulate import main

if __name__ == "__main__":
    sys.exit(main())
