"""Adapters that turn other re-ID libraries' models into bau feature files (``bau extract --from``).

``torchreid``: models of torchreid (Zhou et al.'s deep-person-reid, PyPI ``torchreid``), built by its
own factory and run with its own test transform (``bau.adapters.torchreid``).
"""
