"""bau: an analysis-and-diagnostics toolkit for domain-generalizable person re-ID around BAU
(Balancing Alignment and Uniformity, Cho et al., NeurIPS 2024).

Layout: ``bau.data`` (datasets, synthetic domains, sampler, two-view augmentations) -> ``bau.models``
(backbones, GeM + BNNeck head) -> ``bau.losses`` / ``bau.memory`` / ``bau.objective`` (Eq. 1-9) ->
``bau.trainer`` -> ``bau.evaluation`` / ``bau.inference`` -> ``analysis`` -> ``app``.
"""

__version__ = "0.1.0"
