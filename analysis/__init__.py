"""bau's analysis library: the measurements and pictures behind the paper's figures.

- ``analysis.geometry``: alignment (Eq. 1) and uniformity (Eq. 2) of a feature set, exact and
  chunked, overall and per group (domain, source vs target): Figures 1b-c, 4a, 4b legends.
- ``analysis.embedding``: seeded t-SNE and the domain-coloured scatter of Figure 4b.
- ``analysis.gradcam``: Grad-CAM maps of the retrieval embedding (Figure 2).
- ``analysis.galleries``: the weight-score gallery of Figure 5b and ranked retrieval lists.
- ``analysis.plotting``: the shared style (colours per method and per domain, figure sizes) and
  ``save_figure``, which writes PNG + PDF + the plotted numbers.

Everything here is a function over arrays, models or checkpoints; the figure scripts that call
them live elsewhere. Modules import their heavy dependencies (matplotlib, grad-cam) themselves, so
``import analysis.geometry`` stays light.
"""
