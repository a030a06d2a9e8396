import sys

from promptgrad.cli import main

sys.exit(main())
