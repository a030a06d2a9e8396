"""The learners the training loop drives: soft vectors (learner.py) and discrete searches (search/)."""
