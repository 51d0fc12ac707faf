"""Models: soft thresholding, threshold estimator, residual unit, networks, builder, summary, CLI."""

import json
import math

import pytest
import torch

from faultdiag.cli import main
from faultdiag.errors import ConfigError
from faultdiag.models.blocks import ResidualUnit, conv_same, pad_channels
from faultdiag.models.networks import ANCHOR_NAMES, PRESETS, SHRINKAGE_NAMES, build_model, model_summary
from faultdiag.models.shrinkage import Shrinkage, ThresholdEstimator, soft_threshold

torch.set_num_threads(1)

# Small inputs per dims: long enough for every preset's total stride.
INPUT = {1: (1, 256), 2: (1, 32, 32)}


def _model(name, dims, preset, **kw):
    return build_model(name, dims=dims, preset=preset, seed=0, **kw)


# ---------------------------------------------------------------- battery over every model
BATTERY = [(n, d, p) for n in SHRINKAGE_NAMES for d in (1, 2) for p in PRESETS]  # anchors: test_anchors.py


@pytest.mark.parametrize("name,dims,preset", BATTERY)
def test_battery(name, dims, preset):
    model = _model(name, dims, preset, num_classes=5)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, *INPUT[dims], generator=gen)

    # output shape and finite gradients on every parameter (train mode)
    model.train()
    out = model(x)
    assert out.shape == (4, 5)
    (out ** 2).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname

    # eval: deterministic, and each sample alone equals the batch
    model.eval()
    with torch.no_grad():
        y1, y2 = model(x), model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    assert torch.equal(y1, y2)
    torch.testing.assert_close(alone, y1, atol=1e-5, rtol=1e-5)

    # thresholds of the last pass: one per unit for a DRSN, none otherwise
    taus = model.thresholds()
    n_units = sum(model.build_kwargs["units"])
    if name.startswith("drsn"):
        assert len(taus) == n_units
        assert all(t.shape[0] == 1 and not t.requires_grad for t in taus)  # last pass: x[-1:]
    else:
        assert taus == []


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", SHRINKAGE_NAMES)
def test_torchscript_1d(name):
    model = _model(name, 1, "paper").eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 1, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


# ---------------------------------------------------------------- soft thresholding
def test_soft_threshold_formula():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    y = soft_threshold(x, torch.tensor(1.0))
    torch.testing.assert_close(y, torch.tensor([-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]))


@pytest.mark.parametrize("mode", ["cw", "cs"])
@pytest.mark.parametrize("dims", [1, 2])
def test_shrinkage_properties(mode, dims):
    gen = torch.Generator().manual_seed(3)
    shape = (6, 5, 40) if dims == 1 else (6, 5, 7, 9)
    x = torch.randn(*shape, generator=gen) * torch.rand(1, 5, *([1] * dims), generator=gen) * 3
    unit = Shrinkage(5, mode).train()
    y = unit(x)
    tau = unit.last_tau
    assert tau.shape == ((6, 5) if mode == "cw" else (6, 1))
    assert (tau >= 0).all()
    assert (y.abs() <= x.abs() + 1e-7).all()
    abs_mean = x.abs().flatten(2).mean(-1)                                  # (N, C)
    bound = abs_mean if mode == "cw" else abs_mean.mean(1, keepdim=True)
    assert (tau <= bound + 1e-6).all()
    t = tau.reshape(6, -1, *([1] * dims)).expand_as(x)
    outside = x.abs() > t
    torch.testing.assert_close(y[outside], (x - torch.sign(x) * t)[outside])
    assert (y[~outside] == 0).all()
    if mode == "cs":  # one threshold shared by every channel
        assert torch.equal(t[:, 0], t[:, -1])
    with torch.no_grad():  # the in-place inference path gives the same values
        torch.testing.assert_close(unit(x), y)


def test_cs_and_cw_really_differ():
    x = torch.randn(4, 6, 50, generator=torch.Generator().manual_seed(4))
    cw, cs = Shrinkage(6, "cw"), Shrinkage(6, "cs")
    cw(x), cs(x)
    assert cw.last_tau.shape == (4, 6) and cs.last_tau.shape == (4, 1)
    assert cw.estimator.fc2.out_features == 6 and cs.estimator.fc2.out_features == 1
    # CW thresholds vary across channels within a sample
    assert (cw.last_tau.std(dim=1) > 0).all()


@pytest.mark.parametrize("mode", ["cw", "cs"])
def test_pooling_uses_absolute_values(mode):
    # Zero-mean signal: pooling the signed signal would give tau = 0; |x| gives 0.5 * mean|x|.
    est = ThresholdEstimator(3, mode).eval()
    with torch.no_grad():
        est.fc2.weight.zero_()
        est.fc2.bias.zero_()                       # alpha = sigmoid(0) = 0.5
    base = torch.tensor([1.0, -1.0] * 8)           # signed mean exactly 0
    x = torch.stack([base * 1.0, base * 2.0, base * 4.0]).unsqueeze(0)  # (1, 3, 16)
    tau = est(x)
    expected = 0.5 * torch.tensor([[1.0, 2.0, 4.0]])
    if mode == "cs":
        expected = expected.mean(1, keepdim=True)
    torch.testing.assert_close(tau, expected)


@pytest.mark.parametrize("mode", ["cw", "cs"])
def test_shrinkage_gradcheck(mode):
    # Analytic gradients (through x, the thresholds and the estimator) match finite differences.
    unit = Shrinkage(3, mode).double().eval()
    x = torch.randn(2, 3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5), requires_grad=True)
    assert torch.autograd.gradcheck(unit, (x,))


def test_invalid_shrinkage_mode():
    with pytest.raises(ConfigError, match="'shrinkage'.*got 'sc'"):
        Shrinkage(4, "sc")


# ---------------------------------------------------------------- residual unit
@pytest.mark.parametrize("c_in,c_out", [(4, 8), (3, 6), (4, 7), (5, 5)])
def test_pad_channels_keeps_original_in_middle(c_in, c_out):
    x = torch.randn(2, c_in, 10) + 10.0  # no zeros by accident
    y = pad_channels(x, c_out)
    before = (c_out - c_in) // 2
    assert y.shape == (2, c_out, 10)
    assert torch.equal(y[:, before:before + c_in], x)
    assert (y[:, :before] == 0).all() and (y[:, before + c_in:] == 0).all()


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("c_in,c_out,stride", [(4, 8, 2), (3, 6, 2), (4, 7, 1), (4, 4, 2)])
def test_unit_with_zero_residual_is_the_identity(dims, c_in, c_out, stride):
    unit = ResidualUnit(c_in, c_out, stride=stride, dims=dims, shrinkage="cw")
    with torch.no_grad():
        for m in (unit.conv1, unit.conv2):
            m.weight.zero_()
            m.bias.zero_()
    shape = (2, c_in, 27) if dims == 1 else (2, c_in, 9, 11)
    x = torch.randn(*shape) + 10.0
    y = unit.eval()(x)
    sub = x[:, :, ::stride] if dims == 1 else x[:, :, ::stride, ::stride]
    torch.testing.assert_close(y, pad_channels(sub, c_out))


@pytest.mark.parametrize("length", [27, 28, 2047, 2048])
@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (4, 2), (64, 8), (5, 3)])
def test_conv_same_gives_keras_length(length, kernel, stride):
    conv = conv_same(1, 2, 3, kernel, stride)
    assert conv(torch.zeros(1, 2, length)).shape[-1] == math.ceil(length / stride)


@pytest.mark.parametrize("shortcut", ["pad", "conv", None])
@pytest.mark.parametrize("length", [27, 2047])
def test_unit_odd_lengths(shortcut, length):
    unit = ResidualUnit(4, 6, stride=2, kernel_size=4, shortcut=shortcut, shrinkage="cs")
    assert unit(torch.randn(2, 4, length)).shape == (2, 6, math.ceil(length / 2))


def test_unit_errors():
    with pytest.raises(ConfigError, match="'shortcut'.*got 'zero'"):
        ResidualUnit(4, 4, shortcut="zero")
    with pytest.raises(ConfigError, match="'out_channels'"):
        ResidualUnit(8, 4, shortcut="pad")
    with pytest.raises(ConfigError, match="'stride'.*got 0"):
        ResidualUnit(4, 4, stride=0)


# ---------------------------------------------------------------- network, init, builder
def test_keras_he_normal_init():
    model = build_model("drsn-cw", preset="wide", seed=0)
    w = model.stem[1].weight                       # 16 x 1 x 64: fan_in 64
    sigma = math.sqrt(2 / 64)
    assert abs(w.std().item() / sigma - 1) < 0.1
    assert w.abs().max().item() <= 2 * sigma / 0.87962566103423978 + 1e-6
    assert all((m.bias == 0).all() for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)))
    fc2 = model.stages[0][0].shrink.estimator.fc2  # glorot uniform bound sqrt(6 / (16 + 16))
    assert fc2.weight.abs().max().item() <= math.sqrt(6 / 32)


def test_seed_gives_same_weights_and_build_kwargs_rebuild():
    a = build_model("drsn-cs", widths=(4, 6, 8), units=(1, 2, 1), seed=7)
    b = build_model(**a.build_kwargs)
    assert a.build_kwargs == b.build_kwargs
    assert a.build_kwargs["name"] == "drsn-cs" and a.build_kwargs["widths"] == [4, 6, 8]
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_presets_and_overrides():
    paper = build_model("drsn-cw")
    assert paper.build_kwargs["preset"] == "paper" and paper.build_kwargs["dims"] == 1
    assert len(paper.stages) == 3 and [len(s) for s in paper.stages] == [4, 4, 4]
    x = torch.randn(2, 1, 2048)
    assert paper.stem(x).shape == (2, 4, 1024)     # Table II: 4 kernels, width 3, stride 2
    assert paper.stages(paper.stem(x)).shape == (2, 16, 128)
    mnist = build_model("resnet", dims=2)
    assert mnist.build_kwargs["preset"] == "seed-mnist"
    assert mnist.bn.momentum == 0.01 and mnist.bn.eps == 1e-3
    assert build_model("drsn-cw", preset="seed-mnist").build_kwargs["dims"] == 2
    assert build_model("resnet", kernel_size=5).stages[0][0].conv1.kernel_size == (5,)
    assert build_model("resnet", shortcut="conv").stages[0][0].shortcut == "conv"


@pytest.mark.parametrize("length", [2048, 2001, 777])
def test_maxpool_subsampling_keeps_the_strided_lengths_and_picks_maxima(length):
    strided = build_model("drsn-cw", preset="wide", seed=0)
    pooled = build_model("drsn-cw", preset="wide", downsample="maxpool", seed=0)
    x = torch.randn(3, 1, length)
    stem = pooled.stem(x)
    assert pooled.stages(stem).shape == strided.stages(strided.stem(x)).shape   # ceil(L / stride) per stage
    first = pooled.stages[0]
    assert isinstance(first[0], torch.nn.MaxPool1d) and all(u.stride == 1 for u in first[1:])
    torch.testing.assert_close(first[0](stem)[..., :4], stem[..., :8].reshape(3, -1, 4, 2).amax(-1))
    assert sum(p.numel() for p in pooled.parameters()) == sum(p.numel() for p in strided.parameters())


@pytest.mark.parametrize("dims, shape", [(1, (4, 1, 2048)), (2, (4, 1, 28, 28))])
def test_fc_head_is_wdcnns_and_rebuilds(dims, shape):
    net = build_model("drsn-cs", dims=dims, preset="wide" if dims == 1 else "seed-mnist", head="fc",
                      downsample="maxpool", seed=3).eval()
    x = torch.randn(*shape)
    assert net(x).shape == (4, 10)
    assert net.fc.in_features == 100 and isinstance(net.hidden[2], torch.nn.Linear)
    assert net.hidden[2].in_features == net.bn.num_features * 3 ** dims     # max-pooled to 3 bins per axis
    again = build_model(**net.build_kwargs)
    assert again.build_kwargs == net.build_kwargs
    torch.testing.assert_close(again.eval()(x), net(x))
    with pytest.raises(ConfigError, match="'head'"):
        build_model("drsn-cw", head="flatten")
    with pytest.raises(ConfigError, match="'downsample'"):
        build_model("drsn-cw", downsample="avgpool")


@pytest.mark.parametrize("dims", [1, 2])
def test_stem_dropout_acts_in_training_only(dims):
    plain = _model("drsn-cw", dims, "paper" if dims == 1 else "seed-mnist")
    drop = _model("drsn-cw", dims, "paper" if dims == 1 else "seed-mnist", stem_dropout=0.5)
    assert drop.build_kwargs["stem_dropout"] == 0.5 and "stem_dropout" not in plain.build_kwargs
    drop.load_state_dict(plain.state_dict())            # no weights of its own
    x = torch.randn(4, *INPUT[dims])
    plain.eval(), drop.eval()
    torch.testing.assert_close(drop(x), plain(x))       # identity in eval mode
    drop.train()
    stem = drop.stem_drop(drop.stem(x))
    zeros = (stem == 0).float().mean().item()
    assert 0.35 < zeros < 0.65                          # about half of the stem outputs dropped
    assert not torch.equal(drop(x), drop(x))            # stochastic while training
    rebuilt = build_model(**drop.build_kwargs)
    assert isinstance(rebuilt.stem_drop, torch.nn.Dropout) and rebuilt.stem_drop.p == 0.5
    for bad in (-0.1, 1.0, "0.3", True):
        with pytest.raises(ConfigError, match=f"'stem_dropout'.*got {bad!r}"):
            build_model("resnet", stem_dropout=bad)


def test_seed_mnist_summary_by_hand():
    counts = model_summary(build_model("drsn-cw", dims=2), (1, 28, 28))
    macs = 28 * 28 * 8 * 9 + 2 * (14 * 14 * 8 * 8 * 9) + 8 * 8 + 8 * 8 + 8 * 10
    params = (8 * 9 + 8) + 16 + 2 * (8 * 8 * 9 + 8) + 16 + (8 * 8 + 8) + 16 + (8 * 8 + 8) + 16 + (8 * 10 + 10)
    assert counts == {"params": params, "macs": macs}


def test_builder_errors():
    with pytest.raises(ConfigError, match="drsn-cw"):
        build_model("drsn")
    with pytest.raises(ConfigError, match="Unknown.*'width'.*valid keywords.*'widths'"):
        build_model("resnet", width=(4,))
    with pytest.raises(ConfigError, match="'preset'.*got 'tiny'"):
        build_model("resnet", preset="tiny")
    with pytest.raises(ConfigError, match="'shortcut'.*convnet"):
        build_model("convnet", shortcut="pad")
    with pytest.raises(ConfigError, match="one entry per stage"):
        build_model("resnet", widths=(4, 8))
    with pytest.raises(ConfigError, match="'num_classes'.*got 0"):
        build_model("resnet", num_classes=0)
    with pytest.raises(ConfigError, match="'bn_momentum'.*got 1.5"):
        build_model("resnet", bn_momentum=1.5)


def test_cli_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(SHRINKAGE_NAMES) * len(PRESETS) + len(ANCHOR_NAMES)
    assert [(r["model"], r["preset"], r["input"]) for r in rows[-2:]] == [("wdcnn", None, "1x2048"), ("ticnn", None, "1x2048")]
    paper = {r["model"]: r for r in rows if r["preset"] == "paper"}
    assert paper["resnet"]["params"] == paper["convnet"]["params"] < paper["drsn-cs"]["params"] < paper["drsn-cw"]["params"]
    assert all(r["macs"] > 0 for r in rows)
