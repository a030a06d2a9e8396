"""promptgrad: backpropagate into a prompt. Learn soft (or discrete) prompts for a frozen causal LM.

The core never imports a UI: `promptgrad.training.train` yields typed events (`promptgrad.events`)
that the command line (`promptgrad.cli`) and the TUI (`promptgrad_tui`) consume.
"""

__version__ = "0.1.0"
