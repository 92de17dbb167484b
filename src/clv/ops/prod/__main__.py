"""``python -m clv.ops.prod``: the production profile's command line (make up, make down)."""
import sys

from clv.ops.prod import main

sys.exit(main())
