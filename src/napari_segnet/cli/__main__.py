"""``python -m napari_segnet.cli``: the same as the ``napari-segnet`` command."""

import sys

from napari_segnet.cli import main

sys.exit(main())
