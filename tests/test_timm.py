"""Any timm model by name: the cut identity against timm's own forward, one fc unlearning step and the
embedding extraction for one small model of each family; the option's errors; pretrained weights from
a (fake) local Hugging Face cache. Random initialisation, CPU, 32x32 inputs (digits' size for them)."""

from __future__ import annotations

import copy
import math

import pytest
import timm
import torch

import opts
from core.feeds import ImageFeed, TensorFeed
from core.runtime import UserError
from engine.embeddings import extract
from engine.unlearn import run
from methods import get_method
from methods.base import Context
from models import create_model
from models.cutnet import CUTS
from models.timm_zoo import create_timm
from stages import experiment

SIZE = 32
# One small model per family, with the block the partial cut starts at (where timm keeps it).
FAMILIES = {
    "timm:convnext_atto": "ConvNeXtBlock",                       # CNN: stages[-1].blocks[-1]
    "timm:resnet10t": "BasicBlock",                              # CNN: layer4[-1]
    "timm:vit_tiny_patch16_224": "Block",                        # ViT: blocks[-1]
    "timm:swin_tiny_patch4_window7_224": "SwinTransformerBlock",  # hierarchical transformer: layers[-1].blocks[-1]
    "timm:mobilenetv3_small_050": "ConvBnAct",                   # mobile net: blocks[-1][-1] (its last 1x1 conv stage)
}


def _images(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module", params=FAMILIES)
def family(request) -> tuple[str, torch.nn.Module]:
    """(name, CutNet with 4 classes), built once per module from seed 0."""
    torch.manual_seed(0)
    return request.param, create_model(request.param, num_classes=4, img_size=SIZE).eval()


def test_cut_identity_against_timm(family):
    """Every cut's tail on its input equals the whole net, which is timm's own forward_features +
    forward_head(pre_logits=True) followed by our head; no parameter belongs to two parts."""
    name, net = family
    torch.manual_seed(0)  # the same random weights: the build created the model the same way first
    ref = create_timm(name.removeprefix("timm:"), img_size=SIZE).eval()  # timm's model, classifier removed
    assert type(net.last_block).__name__ == FAMILIES[name]
    x = _images(3)
    with torch.no_grad():
        y = net(x)
        assert torch.equal(net.features_at(x, "fc"), ref.forward_head(ref.forward_features(x), pre_logits=True))
        assert torch.equal(net.head(net.features_at(x, "fc")), y) and y.shape == (3, 4)
        for cut in CUTS:
            assert torch.equal(net.tail(cut)(net.features_at(x, cut)), y), cut
    parts = sum(p.numel() for m in (net.trunk, net.last_block, net.pool, net.head) for p in m.parameters())
    assert parts == sum(p.numel() for p in net.parameters())


def test_one_fc_unlearning_step(family):
    """DELETE, one epoch on the fc embeddings of the images of class 1: finite loss, and only the head moves."""
    name, net = family
    x, y = _images(8), torch.arange(8) % 4
    with torch.no_grad():
        z = net.features_at(x, "fc")
    tail = net.tail("fc")
    args = opts.parse_args(["--model", name, "--setting", "fc", "--method", "DELETE", "--epochs", "1", "--bsize", "4"],
                           stage="main")
    ctx = Context(4, (1,), experiment.method_hparams(args), torch.device("cpu"), torch.Generator().manual_seed(0))
    method = get_method("DELETE")(copy.deepcopy(tail), copy.deepcopy(tail).requires_grad_(False), ctx)
    forget = TensorFeed(z[y == 1], y[y == 1])
    out = run(method, {"forget": forget}, forget, lambda fn, row: row.update(score=0.0) or row, "last")
    assert math.isfinite(out.log[0]["loss"])
    after = out.tail.state_dict()
    assert list(after) == ["head.1.weight", "head.1.bias"]
    assert not torch.equal(after["head.1.weight"], tail.state_dict()["head.1.weight"])


def test_embedding_extraction(family):
    """create_embeddings.py's pass gives the inputs of both cuts, which the tails turn into the net's logits."""
    _, net = family
    x, y = _images(6), torch.arange(6) % 4
    feed = ImageFeed([(x[i], int(y[i])) for i in range(6)], y, torch.device("cpu"))
    embs = extract(net, feed, ["fc", "partial"], bsize=4)
    with torch.no_grad():
        logits = net(x)
        for cut in ("fc", "partial"):
            assert embs[cut].shape == net.features_at(x, cut).shape
            assert torch.allclose(net.tail(cut)(embs[cut]), logits, atol=1e-4), cut


def test_a_model_without_partial_cut_says_so_in_one_line():
    """RegNet's stages are not lists of blocks: fc and full work, partial is refused with the reason."""
    net = create_model("timm:regnetx_002", num_classes=3, img_size=SIZE).eval()
    x = _images(2)
    with torch.no_grad():
        for cut in ("fc", "full"):
            assert torch.equal(net.tail(cut)(net.features_at(x, cut)), net(x))
    for refuse in (lambda: net.tail("partial"), lambda: net.features_at(x, "partial"),
                   lambda: extract(net, ImageFeed([(x[0], 0)], torch.zeros(1), torch.device("cpu")), ["partial"], 1)):
        with pytest.raises(UserError, match=r"timm:regnetx_002 has no partial cut .*use the fc or full setting") as e:
            refuse()
        assert "\n" not in str(e.value)


def test_model_option(capsys):
    """Any timm name is a --model; timm models take the data set's ImageNet-style size (32 on digits)."""
    assert opts.parse_args(["--model", "timm:convnext_atto"], stage="train").img_size == 32
    assert opts.parse_args(["--dataset", "cifar10", "--model", "timm:convnext_atto.d2_in1k"], stage="train").img_size == 224
    for bad, says in (("timm:convnext_attto", "timm has no model 'convnext_attto'; close: timm:convnext_atto"),
                      ("timm:convnext_atto.d2", "no model 'convnext_atto.d2'; close: timm:convnext_atto.d2_in1k"),
                      ("vgg11", "timm has 'vgg11': use timm:vgg11"),
                      ("vgg", "choose from 'resnet18', 'resnet50', 'ViT', 'swint', or 'timm:<name>'")):
        with pytest.raises(SystemExit) as e:
            opts.parse_args(["--model", bad])
        err = capsys.readouterr().err
        assert e.value.code == 2 and says in err and err.count("\n") == 1, err
    with pytest.raises(UserError, match="does not run on 8x8 images"):
        create_model("timm:convnext_atto", 3, img_size=8)


@pytest.mark.parametrize("name", ["timm:mobilenetv3_small_050", "timm:regnetx_002"])
def test_full_setting_trains_the_whole_network(name):
    """The full setting works with or without a partial cut: one FT step on images moves the trunk's
    first layer as well as the head."""
    torch.manual_seed(0)
    net = create_model(name, num_classes=4, img_size=SIZE).eval()
    x, y = _images(8), torch.arange(8) % 4
    tail = net.tail("full")
    first = next(tail.parameters()).detach().clone()
    args = opts.parse_args(["--model", name, "--setting", "full", "--method", "FT", "--epochs", "1", "--bsize", "8"],
                           stage="main")
    ctx = Context(4, (1,), experiment.method_hparams(args), torch.device("cpu"), torch.Generator().manual_seed(0))
    method = get_method("FT")(tail, copy.deepcopy(tail).requires_grad_(False), ctx)
    out = run(method, {"retain": TensorFeed(x[y != 1], y[y != 1])}, None,
              lambda fn, row: row.update(score=0.0) or row, "last")
    assert math.isfinite(out.log[0]["loss"]) and not torch.equal(next(out.tail.parameters()), first)


def _fake_cache(home, repo: str, sd: dict) -> None:
    """A Hugging Face hub cache holding `repo`'s model.safetensors, laid out as huggingface_hub writes it."""
    from safetensors.torch import save_file
    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "snapshots" / commit / "model.safetensors"))


@pytest.fixture
def offline_hf(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: no network
    return tmp_path


def test_pretrained_weights_come_from_the_local_cache(offline_hf):
    torch.manual_seed(123)
    fake = timm.create_model("test_resnet").state_dict()  # ImageNet-shaped, with its 1000-class fc
    _fake_cache(offline_hf, "timm/test_resnet.r160_in1k", fake)
    net = create_model("timm:test_resnet", num_classes=3, img_size=SIZE, pretrained=True)
    trunk = net.trunk.model.state_dict()
    assert trunk and all(torch.equal(v, fake[k]) for k, v in trunk.items())
    ref = timm.create_model("test_resnet")
    ref.load_state_dict(fake)
    assert all(torch.equal(v, ref.layer4[-1].state_dict()[k]) for k, v in net.last_block.state_dict().items())


def test_pretrained_offline_fails_in_one_line(offline_hf):
    with pytest.raises(UserError) as e:
        create_model("timm:test_resnet", num_classes=3, img_size=SIZE, pretrained=True)
    msg = str(e.value)
    assert "\n" not in msg and "timm:test_resnet" in msg and str(offline_hf / "hub") in msg
    assert "timm.create_model('test_resnet.r160_in1k', pretrained=True)" in msg and "drop --pretrained" in msg
