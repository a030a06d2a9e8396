"""The world outside: experiment trackers and PEFT export."""
