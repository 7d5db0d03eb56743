import sys

from mlptl.cli import main

sys.exit(main())
