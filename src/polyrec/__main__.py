"""`python -m polyrec …` (and `torchrun -m polyrec …`): the command line."""

import sys

from .cli import main

sys.exit(main())
