"""Run `promptgrad` or `promptgrad-tui` with every training step slowed down, so that a test can signal
or kill the process in the middle of a run. Not a test; tests start it as a subprocess:

    python tests/slow_entry.py cli train ...      # SLOW_STEP_SECONDS (default 0.3) before each step
    python tests/slow_entry.py tui --config run.toml
"""

import os
import sys
import time

import promptgrad.learner

original = promptgrad.learner.training_step


def slow_step(*args, **kwargs):
    time.sleep(float(os.environ.get("SLOW_STEP_SECONDS", "0.3")))
    return original(*args, **kwargs)


promptgrad.learner.training_step = slow_step

if __name__ == "__main__":
    which, argv = sys.argv[1], sys.argv[2:]
    if which == "cli":
        from promptgrad.cli import main
    else:
        from promptgrad_tui.app import main
    sys.exit(main(argv))
