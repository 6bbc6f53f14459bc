"""``python -m napari_causcell.cli`` (what ``--devices``/``--nodes`` run under torchrun)."""

import sys

from ._main import main

sys.exit(main())
