"""What a prompt is measured and read by: loss and accuracy, baselines, intervals, nearest tokens."""
