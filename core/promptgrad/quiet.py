"""Keep the terminal for promptgrad's own output: no per-tensor loading bars or deprecation chatter
from the libraries underneath (a TUI would have them scribble over its screen)."""

from __future__ import annotations


def quiet_libraries() -> None:
    import warnings

    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
