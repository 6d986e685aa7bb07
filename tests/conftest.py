"""Shared fixtures: one tiny synthetic multi-domain dataset per test session."""
import os

import pytest
import torch

# Tiny tensors: one intra-op thread is fastest, and OpenMP spin-waiting on an oversubscribed
# 2-core machine (other processes, loader workers) can make each op 30x slower.
torch.set_num_threads(1)
# No test downloads ImageNet weights (bau.models.pretrained); the download tests unset this.
os.environ.setdefault("BAU_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """Three synthetic domains x 8 ids in the Market layout (generated once, ~1 s)."""
    from bau.data.synthetic import generate

    root = tmp_path_factory.mktemp("synth")
    generate(str(root), num_domains=3, ids_per_domain=8, seed=0, workers=1)
    return str(root)


TIERS = ("unit", "integration", "distributed", "browser")  # declared in pyproject.toml


def pytest_collection_modifyitems(config, items):
    """Every test belongs to a tier (``make test-fast`` runs the unit tier): an unmarked test stops the run."""
    missing = [item.nodeid for item in items if not any(item.get_closest_marker(t) for t in TIERS)]
    if missing:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(TIERS)}): {', '.join(missing[:5])}")
