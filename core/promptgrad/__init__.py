"""promptgrad: backpropagate into a prompt. Learn soft (or discrete) prompts for a frozen causal LM.

The core never imports a UI: `promptgrad.train.loop.train` yields typed events (`promptgrad.events`)
that the command line (`promptgrad.cli.main`) and the TUI (`promptgrad_tui`) consume. In a notebook,
`promptgrad.learn(model, tokenizer, pairs, **settings)` (api.py) learns a prompt for a model already
loaded, without a run folder.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("learn", "LearnedPrompt", "TrainConfig"):  # imported when first used: `import promptgrad` stays light
        if name == "TrainConfig":
            from promptgrad.config import TrainConfig

            return TrainConfig
        import importlib

        return getattr(importlib.import_module("promptgrad.api"), name)
    raise AttributeError(f"module 'promptgrad' has no attribute {name!r}")
