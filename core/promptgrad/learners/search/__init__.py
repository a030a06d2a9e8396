"""The discrete search: prompts of real tokens that can be pasted into any API (`--mode hard`).

hard_learner.py   the learner the training loop drives: proposes, judges on held-out training pairs, keeps the best
gcg.py            greedy coordinate gradient: the one-hot gradient proposes swaps, exact losses decide
pez.py            projected gradient: a continuous shadow, the loss and gradient taken at its projection
relax.py          the original's softmax over the vocabulary, as a baseline that does not converge
projection.py     nearest vocabulary rows, which tokens are allowed, and the decode/re-encode round trip
fluency.py        a prompt's own nats/token and its gradient, for fluency-aware GCG
"""
