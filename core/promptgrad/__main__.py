import sys

from promptgrad.cli.main import main

sys.exit(main())
