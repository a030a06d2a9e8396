"""What the two table panes share: replacing a DataTable's whole content at each update."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable


def set_table(table: DataTable, labels: list[str], rows: list[list[Text]], widths: list[int] | None = None) -> None:
    """Replace a table's columns and rows. Column widths come from this content (or `widths`): left to
    themselves they only ever grow, to the widest cell the table has held."""
    table.clear(columns=True)
    for i, label in enumerate(labels):
        width = widths[i] if widths else max([len(label), *(row[i].cell_len for row in rows if i < len(row))])
        table.add_column(label if len(label) <= width else label[: max(1, width - 1)] + "…", width=width)
    for row in rows:
        table.add_row(*row)
