"""``python -m layersv.cli ...`` (used under torchrun): the ``layersv`` command."""

import sys

from . import main

sys.exit(main())
