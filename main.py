"""Launch the gptviz desktop app on its built-in default (demo model, built-in corpus)."""

import sys

from gptviz.qt.app import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
