"""BAU's method: the losses (Eq. 1-8), the prototype memory (Eq. 7) and the objective (Eq. 9)."""
