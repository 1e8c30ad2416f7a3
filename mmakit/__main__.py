import sys

from mmakit.cli import main

sys.exit(main())
