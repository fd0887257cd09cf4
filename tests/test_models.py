"""Model zoo: every backbone exposes the cuts exactly; the ResNets built with timm load the checkpoints
of the torchvision build; pretrained weights fail clearly offline. (timm models by name: test_timm.py.)"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core import logits
from core.runtime import UserError
from data import get_info
from models import create_model, list_models, model_family
from models.cutnet import CUTS, CutNet, load_weights, make_head

# Every registered backbone is tested the moment it exists, at the digits input size of its family.
SIZES = {name: get_info("digits").img_size[model_family(name)] for name in list_models()}


def test_registry_has_the_four_backbones():
    assert list_models()[:4] == ["resnet18", "resnet50", "ViT", "swint"]
    with pytest.raises(UserError, match="valid: resnet18, resnet50, ViT, swint"):
        create_model("vgg", 10)


@pytest.mark.parametrize("name", list(SIZES))
def test_tail_of_features_equals_forward(name):
    torch.manual_seed(0)
    net = create_model(name, num_classes=7, stem="small", img_size=SIZES[name]).eval()
    x = torch.randn(3, 3, SIZES[name], SIZES[name])
    with torch.no_grad():
        y = net(x)
        assert y.shape == (3, 7)
        for cut in CUTS:
            z = net.features_at(x, cut)
            assert torch.equal(net.tail(cut)(z), y), (name, cut)
        assert net.tail("fc").features(net.features_at(x, "fc")).shape == net.features_at(x, "fc").shape


def test_resnet_stems():
    small = create_model("resnet18", 10, stem="small", img_size=16)
    big = create_model("resnet18", 10, stem="imagenet", img_size=32)
    assert small.trunk[0].kernel_size == (3, 3) and small.trunk[0].stride == (1, 1)
    assert isinstance(small.trunk[3], torch.nn.Identity)
    assert big.trunk[0].kernel_size == (7, 7) and isinstance(big.trunk[3], torch.nn.MaxPool2d)


def test_partial_tail_keeps_skip_connection():
    """The partial tail is the real last residual block: zeroing its convs leaves the identity path."""
    net = create_model("resnet18", 10, img_size=16).eval()
    block = net.last_block
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
        z = torch.rand(2, 512, 2, 2)
        assert torch.allclose(block(z), torch.relu(z))


def _torchvision_resnet(arch: str, stem: str) -> CutNet:
    """The CutNet exactly as models/resnet.py built it from torchvision before timm was used."""
    import torchvision
    net = getattr(torchvision.models, arch)()
    if stem == "small":
        net.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = torch.nn.Identity()
    trunk = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
                                net.layer4[:-1])
    pool = torch.nn.Sequential(net.avgpool, torch.nn.Flatten(1))
    return CutNet(trunk, net.layer4[-1], pool, make_head(net.fc.in_features, 10))


@pytest.mark.parametrize("arch,stem", [("resnet18", "small"), ("resnet50", "imagenet")])
def test_timm_resnets_load_checkpoints_of_the_torchvision_build(arch, stem):
    """Same parameter names in the same order, strict load, and bit-identical outputs; from the same
    seed, even the same initial weights and random state after (so trained originals do not change)."""
    torch.manual_seed(0)
    old = _torchvision_resnet(arch, stem)
    after_old = torch.rand(3)
    torch.manual_seed(0)
    new = create_model(arch, 10, stem=stem, img_size=32)
    assert torch.equal(torch.rand(3), after_old)
    assert all(torch.equal(v, old.state_dict()[k]) for k, v in new.state_dict().items())
    with torch.no_grad():  # weights and BatchNorm statistics away from their initial values
        for t in old.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) * 0.1 + 0.95 if t.dim() == 1 else torch.randn_like(t) * 0.05)
    assert list(new.state_dict()) == list(old.state_dict())
    load_weights(new, old.state_dict(), "old.pt")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for cut in CUTS:
            assert torch.equal(new.eval().tail(cut)(new.features_at(x, cut)), old.eval()(x)), cut


def test_checkpoint_of_other_model_code_is_refused_in_one_line():
    net = create_model("resnet18", 10, img_size=16)
    sd = net.state_dict()
    sd["head.1.weights"] = sd.pop("head.1.weight")
    with pytest.raises(UserError) as e:
        load_weights(net, sd, "m0.pt")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("m0.pt: refused") and "1 missing, 1 unexpected" in msg


def test_pretrained_offline_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: no network
    with pytest.raises(UserError) as e:
        create_model("resnet18", 10, pretrained=True)
    msg = str(e.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path) in msg and "--pretrained" in msg


@pytest.mark.parametrize("name", [n for n in SIZES if n != "resnet18"])  # resnet18: tests/test_full_scar_hr.py
def test_full_setting_trains_the_whole_network_of_every_backbone(name):
    """`--setting full` on ResNet-50, ViT and Swin: one epoch of SCAR, the method that reads the tail's
    features (Mahalanobis statistics) as well as its outputs, runs, stays finite and moves the first
    layer of the trunk, not just the head. (Every method in full, on ResNet-18: test_full_scar_hr.py.)"""
    import copy

    import opts
    from core.feeds import TensorFeed
    from engine.unlearn import run
    from methods import get_method
    from methods.base import Context
    from stages import experiment

    torch.manual_seed(0)
    s = SIZES[name]
    net = create_model(name, num_classes=4, stem="small", img_size=s)
    x, y = torch.randn(24, 3, s, s), torch.arange(24) % 4
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)):
        bn.momentum = None  # BatchNorm statistics of these inputs: a random net with unit statistics saturates
    with torch.no_grad():
        net.train()(x)
    tail = net.eval().tail("full")
    with torch.no_grad():  # a head fitted to y, so that the original's predictions spread over the classes
        f = torch.cat([tail.features(x), torch.ones(24, 1)], 1)
        w = torch.linalg.lstsq(f, 5 * torch.eye(4)[y]).solution
        net.head[1].weight.copy_(w[:-1].T)
        net.head[1].bias.copy_(w[-1])
    first = next(tail.parameters()).detach().clone()
    feeds = {"retain": TensorFeed(x[y != 1], y[y != 1]), "forget": TensorFeed(x[y == 1], y[y == 1]),
             "surrogate": TensorFeed(x, torch.full((24,), -1))}
    args = opts.parse_args(["--model", name, "--setting", "full", "--method", "SCAR", "--epochs", "1", "--bsize", "8"],
                           stage="main")
    ctx = Context(4, (1,), experiment.method_hparams(args), torch.device("cpu"), torch.Generator().manual_seed(0))
    scar = get_method("SCAR")(copy.deepcopy(tail), copy.deepcopy(tail).requires_grad_(False), ctx)
    out = run(scar, {k: feeds[k] for k in scar.needs}, feeds["forget"], lambda fn, row: row.update(score=0.0) or row,
              "last")
    assert out.stop_reason in ("completed", "method stop rule at epoch 1") and math.isfinite(out.log[0]["loss"])
    assert not torch.equal(next(out.tail.parameters()), first)


@pytest.mark.parametrize("n_classes", [2, 10, 16, 100])
def test_class_functions_are_torchs_up_to_rounding(n_classes):
    """`core.logits` computes torch's linear, log-softmax, softmax and cross-entropy (values and
    gradients, up to float rounding) with few classes (the transposed layout) and with many (torch's own)."""
    g = torch.Generator().manual_seed(n_classes)
    x = torch.randn(300, 64, generator=g, requires_grad=True)
    w = torch.randn(n_classes, 64, generator=g, requires_grad=True)
    b = torch.randn(n_classes, generator=g, requires_grad=True)
    y = torch.randint(0, n_classes, (300,), generator=g)

    def run(lin, ce, ls, sm):
        for t in (x, w, b):
            t.grad = None
        z = lin(x, w, b)
        out = (z, ce(z, y), ce(z, y, reduction="none"), ls(z / 3), sm(z))
        (out[1] + out[3][:, 0].mean() + out[4][:, -1].sum()).backward()
        return [o.detach() for o in out] + [t.grad.clone() for t in (x, w, b)]

    ours = run(logits.linear, logits.cross_entropy, logits.log_softmax, logits.softmax)
    torchs = run(F.linear, F.cross_entropy, lambda z: F.log_softmax(z, 1), lambda z: F.softmax(z, 1))
    assert ours[0].is_contiguous()  # the logits; the (log-)probabilities may be a transposed view
    for a, t in zip(ours, torchs, strict=True):
        torch.testing.assert_close(a, t, rtol=1e-5, atol=1e-5)


def test_classifier_is_a_linear_with_the_same_checkpoint_keys():
    """The head's `Classifier` loads `nn.Linear` weights; train mode is torch's own product bit for bit."""
    lin = torch.nn.Linear(32, 10)
    head = make_head(32, 10)
    head[1].load_state_dict(lin.state_dict())
    x = torch.randn(8, 32)
    assert isinstance(head[1], torch.nn.Linear)
    assert torch.equal(head[1].train()(x), lin(x))
    torch.testing.assert_close(head[1].eval()(x), lin(x), rtol=1e-5, atol=1e-5)
