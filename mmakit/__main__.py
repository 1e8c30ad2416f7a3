import sys

from mmakit.study.cli import main

sys.exit(main())
