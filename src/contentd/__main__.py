import sys

from contentd.cli import main

sys.exit(main())
