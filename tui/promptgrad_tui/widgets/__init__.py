"""The main screen's panes, one module each: config form, loss chart, predictions, nearest tokens, status."""
