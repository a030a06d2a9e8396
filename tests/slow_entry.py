"""Run `promptgrad` or `promptgrad-tui` with every training step slowed down, so that a test can signal
or kill the process in the middle of a run. Not a test; tests start it as a subprocess:

    python tests/slow_entry.py cli train ...      # SLOW_STEP_SECONDS (default 0.3) before each step
    python tests/slow_entry.py tui --config run.toml

With INTERRUPT_IN_CHECKPOINT=1 the process sends itself ctrl+c twice while a checkpoint is being written.
With DIE_AT_STEP=N (and RANK matching DIE_RANK, default 1, under a distributed launch) the process ends
at once, as a killed one would, before its Nth step: its peers must then say so in one line.
"""

import os
import sys
import time

import promptgrad.learners.learner

original = promptgrad.learners.learner.training_step


steps_taken = 0


def slow_step(*args, **kwargs):
    global steps_taken
    steps_taken += 1
    if steps_taken == int(os.environ.get("DIE_AT_STEP", "0")) and os.environ.get("RANK") == os.environ.get(
        "DIE_RANK", "1"
    ):
        os._exit(3)
    time.sleep(float(os.environ.get("SLOW_STEP_SECONDS", "0.3")))
    return original(*args, **kwargs)


promptgrad.learners.learner.training_step = slow_step

if os.environ.get("INTERRUPT_IN_CHECKPOINT"):  # ctrl+c twice while the first checkpoint is being serialised
    import signal

    import torch

    original_save = torch.save

    def interrupted_save(obj, *args, **kwargs):
        if isinstance(obj, dict) and "metrics_bytes" in obj:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
        return original_save(obj, *args, **kwargs)

    torch.save = interrupted_save

if __name__ == "__main__":
    which, argv = sys.argv[1], sys.argv[2:]
    if which == "cli":
        from promptgrad.cli.main import main
    else:
        from promptgrad_tui.app import main
    sys.exit(main(argv))
