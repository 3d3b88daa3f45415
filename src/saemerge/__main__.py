import sys

from saemerge.cli import main

sys.exit(main())
