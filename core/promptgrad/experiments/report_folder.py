"""The folder `promptgrad report --out DIR` writes: report.md, report.csv, report.json and plots/*.svg.

A report folder is written and cleaned (old plots removed) by promptgrad, so it is guarded as a run
folder is (files.Folder): DIR is the user's path, but the folder it names must not be a link (the
report would land, and old plots be removed, wherever it points), and neither may `plots/` in it.
Every file is written and every old plot removed through those folders' descriptors.

DIR may hold an earlier report: promptgrad's own (its report.md begins with REPORT_HEADING) is
replaced, and the command says so; report files that promptgrad did not write are refused, never
overwritten. Plots of the earlier report that this one no longer has (a task not in it any more) are
removed only when replacing promptgrad's own report, and only the `compare-*.svg` and `loss-*.svg`
files that are regular files in plots/ itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from promptgrad.errors import UserError
from promptgrad.files import Folder
from promptgrad.store.run_folder import run_folder_holding

REPORT_HEADING = b"# promptgrad report"  # results.Results.markdown's first line
TABLES = ("report.md", "report.csv", "report.json")
PLOTS = "plots"
PLOT_PREFIXES = ("compare-", "loss-")  # plots.draw's file names


@dataclass(frozen=True)
class Written:
    paths: list[Path]
    replaced: bool  # an earlier promptgrad report was in the folder, and this one replaced it


def is_our_report(folder: Folder) -> bool:
    """Does report.md begin as promptgrad's reports do? (Read through the folder, never through a link.)"""
    try:
        fd = folder.open_fd("report.md")
    except FileNotFoundError:
        return False
    try:
        return os.read(fd, len(REPORT_HEADING)) == REPORT_HEADING
    finally:
        os.close(fd)


def check(out: Path, folder: Folder) -> bool:
    """Refuse what a report must not go into; whether an earlier promptgrad report is there to replace."""
    if folder.exists("config.toml"):
        raise UserError(f"--out {out} is a run folder; a report goes into a folder of its own (say --out report)")
    for name in TABLES:
        folder.check_not_link(name)
    ours = is_our_report(folder)
    foreign = [name for name in TABLES if folder.exists(name)] if not ours else []
    if foreign:
        raise UserError(
            f"--out {out} holds a {foreign[0]} that promptgrad did not write (a promptgrad report's report.md "
            f"begins with '{REPORT_HEADING.decode()}'); give another --out, or move it away"
        )
    if folder.exists(PLOTS):
        folder.sub(PLOTS).close()  # a link in plots/' place is refused here, before minutes of reading runs
    return ours


def open_out(out: Path, create: bool) -> Folder:
    try:
        return Folder.at(out, create=create, link_ok=False)
    except UserError as e:
        raise UserError(f"--out: {e}") from None


def check_destination(out: Path) -> None:
    """Said before the runs are read: a refusal should be quick. A folder not there yet is fine, unless
    it would be made inside a run folder (which holds only what its run writes)."""
    inside = run_folder_holding(out)
    if inside is not None:
        raise UserError(
            f"--out {out} is in the run folder {inside}, which holds only what its run writes; give a "
            f"folder of its own (say --out report)"
        )
    try:
        folder = open_out(out, create=False)
    except FileNotFoundError:
        return
    with folder:
        check(out, folder)


def write_report(out: Path, tables: dict[str, bytes], plots: dict[str, bytes]) -> Written:
    """Write the report's tables (report.md, .csv, .json) and plots into `out` (made if missing)."""
    out = Path(out)
    with open_out(out, create=True) as folder:
        replacing = check(out, folder)
        with folder.sub(PLOTS, create=True) as plot_folder:
            written = []
            for name, data in tables.items():
                folder.write_atomic(name, data)
                written.append(out / name)
            for name, svg in plots.items():
                plot_folder.write_atomic(name, svg)
                written.append(out / PLOTS / name)
            if replacing:
                remove_stale_plots(plot_folder, set(plots))
    return Written(written, replacing)


def remove_stale_plots(plots: Folder, kept: set[str]) -> None:
    """An earlier report's plots of tasks this one does not have: promptgrad's file names, regular files
    in plots/ itself (a link is left alone), removed through plots/' descriptor."""
    for name in plots.listdir():
        if name not in kept and name.startswith(PLOT_PREFIXES) and name.endswith(".svg") and plots.is_regular(name):
            plots.unlink(name)
