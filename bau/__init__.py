"""bau: an analysis-and-diagnostics toolkit for domain-generalizable person re-ID around BAU
(Balancing Alignment and Uniformity, Cho et al., NeurIPS 2024).

Layout: ``bau.data`` (datasets, synthetic domains, sampler, two-view augmentations) -> ``bau.models``
(backbones, GeM + BNNeck head) -> ``bau.method.losses`` / ``bau.method.memory`` / ``bau.method.objective`` (Eq. 1-9) ->
``bau.engine.trainer`` -> ``bau.evaluation`` / ``bau.evaluation.inference`` -> ``analysis`` -> ``app``.
"""

__version__ = "0.1.0"
