import sys

from lamostdb.cli.main import main

sys.exit(main())
