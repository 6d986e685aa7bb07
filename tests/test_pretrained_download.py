"""ImageNet weights the usual way: downloaded into the hub cache with torchvision's hash check when no
local copy exists; offline, the same one-line error as before. The download is pointed at local files."""
import hashlib
import os

import pytest
import torch
import torchvision

from bau.core.errors import BauError
from bau.models import pretrained
from bau.models.backbones import ResNet50IN
from bau.models.pretrained import hub_cache_candidates, resolve_weights

pytestmark = pytest.mark.unit


@pytest.fixture
def online(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("BAU_OFFLINE", "0")


def _served(tmp_path, hash_prefix=None):
    """torchvision's resnet50 state dict in a file named as torchvision names them (``name-<sha256 prefix>.pth``)."""
    src = tmp_path / "served" / "tmp.pth"
    src.parent.mkdir()
    sd = torchvision.models.resnet50().state_dict()
    torch.save(sd, src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    named = src.with_name(f"resnet50-{hash_prefix or digest[:8]}.pth")
    src.rename(named)
    return sd, named


def test_offline_keeps_the_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("BAU_OFFLINE", "1")
    monkeypatch.setattr(pretrained, "download_url", lambda b: pytest.fail("BAU_OFFLINE=1 must not download"))
    with pytest.raises(BauError, match=r"offline.*put torchvision's file at .*resnet50-.*model.pretrained=false"):
        resolve_weights("resnet50", None)
    # no route to the server: the same error, quickly, and nothing left in the cache
    monkeypatch.setenv("BAU_OFFLINE", "0")
    monkeypatch.setattr(pretrained, "download_url", lambda b: "http://127.0.0.1:9/resnet50-0676ba61.pth")
    with pytest.raises(BauError, match="model.pretrained=false"):
        resolve_weights("resnet50", None)
    assert not os.path.exists(os.path.join(str(tmp_path), "hub", "checkpoints", "resnet50-0676ba61.pth"))


def test_download_into_the_hub_cache_with_the_hash_check(tmp_path, monkeypatch, online):
    sd, served = _served(tmp_path)
    monkeypatch.setattr(pretrained, "download_url", lambda b: served.as_uri())
    path = resolve_weights("resnet50", None)
    assert path == os.path.join(torch.hub.get_dir(), "checkpoints", served.name) and os.path.isfile(path)
    net = ResNet50IN(pretrained=True)
    assert torch.equal(net.stem[0].weight, sd["conv1.weight"])
    # a local copy wins over any download; the explicit path wins over both
    cached = hub_cache_candidates("resnet50")[0]
    os.replace(path, cached)
    monkeypatch.setattr(pretrained, "download_url", lambda b: pytest.fail("a cached copy must not be downloaded"))
    assert resolve_weights("resnet50", None) == cached
    assert resolve_weights("resnet50", str(served)) == str(served)


def test_a_download_with_the_wrong_hash_is_refused_and_not_kept(tmp_path, monkeypatch, online):
    _, served = _served(tmp_path, hash_prefix="deadbeef")
    monkeypatch.setattr(pretrained, "download_url", lambda b: served.as_uri())
    with pytest.raises(BauError, match="invalid hash value"):
        resolve_weights("resnet50", None)
    assert not os.listdir(os.path.join(torch.hub.get_dir(), "checkpoints"))
