"""promptgrad-tui: a Textual app over the promptgrad core's event stream."""
