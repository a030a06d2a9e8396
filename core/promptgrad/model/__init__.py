"""The frozen LM, how a template becomes tokens, and the forward pass with the prompt spliced in."""
