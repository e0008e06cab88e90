import sys

from gptviz.cli import main

sys.exit(main())
