"""bau's analysis library: the measurements and pictures behind the paper's figures.

- ``analysis.embedding``: seeded t-SNE and the domain-coloured scatter of Figure 4b.
- ``analysis.gradcam``: Grad-CAM maps of the retrieval embedding (Figure 2).
- ``analysis.galleries``: the weight-score gallery of Figure 5b and ranked retrieval lists.
- ``analysis.feature_report``: diagnostics of any model's features (a feature file, docs/feature_files.md):
  alignment with identities per domain, uniformity overall and per domain, CMC/mAP per domain,
  the t-SNE pair and the report of ``bau analyze``; the app's Geometry page shows the same numbers.
- ``analysis.plotting``: the shared style (colours per method and per domain, figure sizes), the
  marks for numbers over seeds (mean ± std bars, paired differences with their 95 % interval;
  the statistics themselves are ``bau.runs.statistics``) and ``save_figure``, which writes PNG + PDF + the
  plotted numbers.

The measures themselves (alignment, Eq. 1, and uniformity, Eq. 2) are ``bau.evaluation.geometry``:
the trainer logs them at every evaluation. The scripts that call the library modules live here too, one
per figure or table: ``analysis.figure1``, ``figure2``, ``figure4``, ``figure5``, ``tables`` and
``effects`` (``python -m analysis.figure1 --sweep RUNS --out FIGURES``), which select runs of a sweep
through ``analysis.sweep_data`` and only plot and write what the run layer (``bau.runs``) reads.
Modules import their heavy dependencies (matplotlib, grad-cam) themselves.
"""
