"""The store contract suite: one set of promises, every backend."""
