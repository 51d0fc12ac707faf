"""WDCNN and TICNN (faultdiag.models.anchors): the papers' shapes, sizes, kernel dropout, builder."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from faultdiag.checkpoint import load_checkpoint
from faultdiag.config import ModelConfig, load_config
from faultdiag.errors import ConfigError, DataError
from faultdiag.evaluate import adabn
from faultdiag.models.anchors import ANCHOR_NAMES, ARCHITECTURES, TICNN_KERNEL_DROPOUT, layer_lengths
from faultdiag.models.networks import MODEL_NAMES, build_model, model_summary
from faultdiag.training import train_model

torch.set_num_threads(1)

# The papers' tables for a 1 x 2048 window: (channels, length) after each conv and pool.
WDCNN_TABLE = [(16, 128), (16, 64), (32, 64), (32, 32), (64, 32), (64, 16), (64, 16), (64, 8), (64, 6), (64, 3)]
TICNN_TABLE = [(16, 256), (16, 128), (32, 128), (32, 64), (64, 64), (64, 32), (64, 32), (64, 16),
               (64, 16), (64, 8), (64, 6), (64, 3)]

# Parameters by hand (weights + biases; BatchNorm weight + bias), 1 input channel, 10 classes:
#   conv1 16*1*64 + 16 = 1040, BN 32;  conv2 32*16*3 + 32 = 1568, BN 64;
#   conv3 64*32*3 + 64 = 6208, BN 128; conv4 (and conv5, conv6) 64*64*3 + 64 = 12352, BN 128;
#   hidden 192*100 + 100 = 19300, BN 200;  fc 100*10 + 10 = 1010.
WDCNN_PARAMS = 1040 + 32 + 1568 + 64 + 6208 + 128 + 2 * (12352 + 128) + 19300 + 200 + 1010   # 54,510
TICNN_PARAMS = WDCNN_PARAMS + 12352 + 128                                                     # 66,990
# MACs of WDCNN per 1 x 2048 window: output length x out channels x in channels x taps per conv.
WDCNN_MACS = (128 * 16 * 1 * 64 + 64 * 32 * 16 * 3 + 32 * 64 * 32 * 3 + 16 * 64 * 64 * 3 + 6 * 64 * 64 * 3
              + 192 * 100 + 100 * 10)                                                         # 716,520


def _x(n=4, channels=1, length=2048, seed=1):
    return torch.randn(n, channels, length, generator=torch.Generator().manual_seed(seed))


def test_anchors_are_in_the_zoo():
    assert set(ANCHOR_NAMES) == {"wdcnn", "ticnn"} and set(ANCHOR_NAMES) <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", ANCHOR_NAMES)
@pytest.mark.parametrize("channels,length", [(1, 2048), (2, 1024), (1, 4096)])
def test_battery(name, channels, length):
    model = build_model(name, in_channels=channels, num_classes=5, seed=0)
    x = _x(4, channels, length)
    model.train()
    out = model(x)
    assert out.shape == (4, 5)
    (out ** 2).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    model.eval()
    with torch.no_grad():
        y1, y2 = model(x), model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    assert torch.equal(y1, y2)
    torch.testing.assert_close(alone, y1, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,table", [("wdcnn", WDCNN_TABLE), ("ticnn", TICNN_TABLE)])
def test_per_layer_shapes_follow_the_papers_table(name, table):
    model = build_model(name, seed=0).eval()
    seen = []
    for layer_name, layer in model.features.named_children():
        if layer_name.startswith(("conv", "pool")):
            layer.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
    with torch.no_grad():
        model(_x(2))
    assert seen == table
    arch = ARCHITECTURES[name]
    assert layer_lengths(2048, arch["stem_stride"], arch["stem_padding"], len(arch["widths"])) == [n for _, n in table]
    assert model.features.conv1.kernel_size == (64,) and model.features.conv1.stride == (arch["stem_stride"],)


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_last_pool_is_the_papers_max_pool_2_at_2048(name):
    model = build_model(name, seed=3).eval()
    paper = copy.deepcopy(model)
    last = [n for n in paper.features._modules if n.startswith("pool")][-1]
    paper.features._modules[last] = torch.nn.MaxPool1d(2)
    x = _x(3)
    with torch.no_grad():
        assert torch.equal(model(x), paper(x))


def test_parameter_and_mac_counts_by_hand():
    assert model_summary(build_model("wdcnn", seed=0), (1, 2048)) == {"params": WDCNN_PARAMS, "macs": WDCNN_MACS}
    ticnn = model_summary(build_model("ticnn", seed=0), (1, 2048))
    assert ticnn["params"] == TICNN_PARAMS and ticnn["macs"] > WDCNN_MACS
    for name in ANCHOR_NAMES:  # the map before the FC is 64 x 3 for any length: same weights
        assert model_summary(build_model(name, seed=0), (1, 4096))["params"] == model_summary(
            build_model(name, seed=0), (1, 1024))["params"]


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_seeded_init_is_reproducible(name):
    a, b, c = build_model(name, seed=5), build_model(name, seed=5), build_model(name, seed=6)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a.features.conv1.weight, c.features.conv1.weight)
    w = a.features.conv1.weight                      # He-normal, Keras' truncated form: std sqrt(2 / 64)
    assert abs(w.std().item() / (2 / 64) ** 0.5 - 1) < 0.15
    assert all((m.bias == 0).all() for m in a.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)))


def test_kernel_dropout_drops_first_layer_weights_in_training_only():
    drop = build_model("ticnn", seed=0)
    plain = build_model("ticnn", kernel_dropout=0.0, seed=0)
    assert drop.build_kwargs["kernel_dropout"] == TICNN_KERNEL_DROPOUT == drop.features.conv1.p
    conv, x = drop.features.conv1, _x(3)
    # training: the convolution with a Bernoulli(1 - p) mask on the weights, scaled by 1 / (1 - p)
    conv.train()
    torch.manual_seed(11)
    out = conv(x)
    torch.manual_seed(11)
    keep = torch.empty_like(conv.weight).bernoulli_(1 - conv.p)
    expected = F.conv1d(x, conv.weight * keep / (1 - conv.p), conv.bias, conv.stride, conv.padding)
    torch.testing.assert_close(out, expected)
    assert 0.4 < 1 - keep.mean().item() < 0.6        # about half of the 16 x 64 weights dropped
    assert not torch.equal(conv(x), conv(x))         # a new mask every pass
    # eval: all weights, the same as the model without kernel dropout
    drop.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(drop(x), plain(x))
        torch.testing.assert_close(conv(x), F.conv1d(x, conv.weight, conv.bias, conv.stride, conv.padding))
    drop.train(), plain.train()
    assert not torch.allclose(drop(x), plain(x))


def test_kernel_dropout_with_one_mask_per_window():
    from faultdiag.models.anchors import KernelDropoutConv1d

    conv = KernelDropoutConv1d(1, 4, 9, stride=2, padding=3, p=0.5, masks="window").train()
    x = _x(6, 1, 64)
    torch.manual_seed(5)
    out = conv(x)
    torch.manual_seed(5)
    keep = torch.empty(6, *conv.weight.shape).bernoulli_(0.5)          # (N, C_out, C_in, K): window i, mask i
    for i in range(6):
        expected = F.conv1d(x[i:i + 1], conv.weight * keep[i] / 0.5, conv.bias, conv.stride, conv.padding)
        torch.testing.assert_close(out[i:i + 1], expected)
    same = x[:1].expand(6, -1, -1).contiguous()
    per_window = conv(same)
    assert not torch.equal(per_window[0], per_window[1])                 # one window, other masks
    conv.masks = "batch"
    per_batch = conv(same)
    assert torch.equal(per_batch[0], per_batch[1])                       # one mask for the batch
    conv.masks = "window"
    out.sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    conv.eval()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), F.conv1d(x, conv.weight, conv.bias, conv.stride, conv.padding))
    for model in (build_model("ticnn", kernel_dropout_masks="window", seed=0),
                  build_model("drsn-cw", preset="wide", kernel_dropout=0.3, kernel_dropout_masks="window", seed=0)):
        conv1 = next(m for m in model.modules() if isinstance(m, KernelDropoutConv1d))
        assert conv1.masks == "window" and model.build_kwargs["kernel_dropout_masks"] == "window"
        assert model.train()(_x(4)).shape == (4, 10)
    with pytest.raises(ConfigError, match="'kernel_dropout_masks'.*got 'sample'"):
        build_model("drsn-cw", kernel_dropout=0.3, kernel_dropout_masks="sample")
    with pytest.raises(ConfigError, match="'kernel_dropout_masks'.*got 'sample'"):
        build_model("ticnn", kernel_dropout_masks="sample")


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_stem_dropout_acts_in_training_only(name):
    drop = build_model(name, stem_dropout=0.3, seed=0)
    plain = build_model(name, seed=0)
    assert drop.build_kwargs["stem_dropout"] == 0.3 and isinstance(drop.features.drop1, torch.nn.Dropout)
    drop.load_state_dict(plain.state_dict())         # no weights of its own
    x = _x(3)
    drop.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(drop(x), plain(x))
    drop.train()
    assert not torch.equal(drop(x), drop(x))


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_build_kwargs_rebuild_and_default_config(name):
    a = build_model(name, in_channels=2, num_classes=4, stem_dropout=0.1, seed=7)
    b = build_model(**a.build_kwargs)
    assert a.build_kwargs == b.build_kwargs and a.build_kwargs["name"] == name
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    # preset None or the default section's "paper": nothing stored
    kwargs = dict(dims=1, in_channels=1, num_classes=3, seed=0, **ModelConfig(name=name).model_kwargs())
    model = build_model(name, **kwargs)
    assert "preset" not in model.build_kwargs
    assert build_model(name, preset="paper", seed=0).build_kwargs == build_model(name, seed=0).build_kwargs


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_fc_input_is_the_penultimate_feature_vector(name):
    model = build_model(name, num_classes=6, seed=0).eval()
    seen = []
    model.fc.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    with torch.no_grad():
        model(_x(5))
    assert isinstance(model.fc, torch.nn.Linear) and seen == [(5, 100)] and model.fc.out_features == 6


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_adabn_reestimates_batchnorm_only(name):
    model = build_model(name, seed=0).eval()
    x = _x(64, seed=4) * 3 + 1
    a, b = adabn(model, x, batch_size=16, seed=0), adabn(model, x, batch_size=16, seed=0)
    bn_a, bn_0 = a.features.bn1, model.features.bn1
    assert not torch.allclose(bn_a.running_mean, bn_0.running_mean)
    torch.testing.assert_close(a.features.conv1.weight, model.features.conv1.weight)
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):  # kernel dropout stayed off
        assert torch.equal(va, vb), k
    with torch.no_grad():
        assert torch.isfinite(a(x)).all()


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_short_fit_learns(name):
    # three classes of noisy tones (0.02, 0.05, 0.11 cycles per sample, random phase)
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(48) % 3
    t = torch.arange(2048, dtype=torch.float32)
    phase = torch.rand(48, 1, generator=gen) * 6.28
    x = torch.sin(2 * torch.pi * torch.tensor([0.02, 0.05, 0.11])[y][:, None] * t + phase)
    x = (x + 0.5 * torch.randn(48, 2048, generator=gen))[:, None, :]
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.eval()
    with torch.no_grad():
        before = F.cross_entropy(model(x), y).item()
    model.train()
    for step in range(45):
        idx = torch.arange(16) + 16 * (step % 3)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(x)
    after = F.cross_entropy(logits, y).item()
    assert after < 0.5 * before
    assert (logits.argmax(1) == y).float().mean().item() > 0.9


def test_train_model_checkpoint_round_trip(tmp_path):
    # the trainer with a default model section and the checkpoint's rebuild
    cfg = load_config(None, ["data.source=simulated", "data.sim_duration_s=2", "data.loads=[0]",
                             "data.window_len=1024", "data.hop=512", "model.name=wdcnn", "train.epochs=1",
                             "train.batch_size=32", "train.threads=1", "device=cpu"])
    result = train_model(cfg, tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt.model_name == "wdcnn" and "preset" not in ckpt.model_kwargs
    x = _x(3, 1, 1024)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.build_model()(x), result.model.eval()(x))


def test_builder_errors():
    for bad in (dict(widths=(4, 8)), dict(units=(1,)), dict(stem_kernel=32), dict(bn_eps=1e-3), dict(shortcut="pad")):
        with pytest.raises(ConfigError, match=rf"{list(bad)}.*do not apply to 'wdcnn'.*valid keywords"):
            build_model("wdcnn", **bad)
    with pytest.raises(ConfigError, match=r"\['kernel_dropout'\] do not apply to 'wdcnn'"):
        build_model("wdcnn", kernel_dropout=0.5)
    with pytest.raises(ConfigError, match="'preset'.*None or 'paper'.*got 'wide'"):
        build_model("ticnn", preset="wide")
    with pytest.raises(ConfigError, match="'dims'.*1 for 'wdcnn'.*got 2"):
        build_model("wdcnn", dims=2)
    for bad in (1.0, -0.1, "0.5", True):
        with pytest.raises(ConfigError, match=f"'kernel_dropout'.*got {bad!r}"):
            build_model("ticnn", kernel_dropout=bad)
    with pytest.raises(ConfigError, match="'stem_dropout'.*got 1.5"):
        build_model("wdcnn", stem_dropout=1.5)
    with pytest.raises(ConfigError, match="'num_classes'.*got 0"):
        build_model("ticnn", num_classes=0)
    with pytest.raises(ConfigError, match="'seed'.*got 'a'"):
        build_model("wdcnn", seed="a")
    # the DRSN family takes kernel dropout on its (1-D convolution) stem, nowhere else
    assert build_model("drsn-cw", kernel_dropout=0.5).build_kwargs["kernel_dropout"] == 0.5
    with pytest.raises(ConfigError, match="'kernel_dropout'.*1-D convolution stem"):
        build_model("drsn-cw", dims=2, kernel_dropout=0.5)


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_shortest_input(name):
    model = build_model(name, seed=0).eval()
    assert model.min_input_len == 768
    with torch.no_grad():
        assert model(_x(2, 1, 768)).shape == (2, 10)
        with pytest.raises(DataError, match="L >= 768.*got \\(2, 1, 767\\)"):
            model(_x(2, 1, 767))
