"""bau: an analysis-and-diagnostics toolkit for domain-generalizable person re-ID around BAU
(Balancing Alignment and Uniformity, Cho et al., NeurIPS 2024).

Layout, each stage importing only the ones before it: ``bau.core`` (config, errors, atomic writes,
device, registry) -> ``bau.data`` (datasets, synthetic domains, samplers, two-view augmentations) ->
``bau.models`` (backbones, GeM + BNNeck head) -> ``bau.method`` (the losses, memory and objective of
Eq. 1-9) -> ``bau.evaluation`` (metrics, re-ranking, inference) -> ``bau.runs`` (run folders,
checkpoints, features, seed statistics) -> ``bau.engine`` (step, trainer, distributed, sweeps) ->
``bau.cli``; then ``analysis`` and ``app``. Each subpackage's ``__init__`` lists what it offers.
"""

__version__ = "0.1.0"
