"""MNIST IDX reader, the noisy-MNIST demo (data, Keras-style L2, determinism) and its CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from faultdiag.cli import main
from faultdiag.data.mnist import MNIST_FILES, MnistData, load_mnist, read_idx
from faultdiag.errors import ConfigError, DataError
from faultdiag.mnist.config import DemoConfig
from faultdiag.mnist.demo import (add_l2_grad_, l2_penalty, prepare_data, regularized_kernels,
                                  run_demo)
from faultdiag.models import inference
from faultdiag.models.inference import bfloat16_supported
from faultdiag.models.networks import build_model

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder: Path, n_train: int = 40, n_test: int = 20, *, gz: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28)), "train_labels": rng.integers(0, 10, n_train),
              "test_images": rng.integers(0, 256, (n_test, 28, 28)), "test_labels": rng.integers(0, 10, n_test)}
    for role, stem in MNIST_FILES.items():
        raw = _idx_bytes(arrays[role], 2051 if role.endswith("images") else 2049)
        (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(raw) if gz else raw)
    return folder


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> MnistData:
    return load_mnist(_write_mnist(tmp_path_factory.mktemp("mnist"), n_train=300, n_test=100))


# ---------------------------------------------------------------- IDX reader


def test_real_files_shapes_and_label_counts(mnist_dir):
    data = load_mnist(mnist_dir)
    assert data.train_images.shape == (60000, 28, 28) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (10000, 28, 28)
    assert np.bincount(data.train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(data.test_labels).tolist() == TEST_COUNTS
    assert data.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert data.train_images.mean() == pytest.approx(33.318, abs=1e-3)
    shas = data.file_sha256s()
    assert shas["train-images-idx3-ubyte.gz"].startswith("440fcabf73cc546f")


def test_raw_and_gzip_read_the_same(tmp_path):
    a = load_mnist(_write_mnist(tmp_path / "gz", gz=True))
    b = load_mnist(_write_mnist(tmp_path / "raw", gz=False))
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.train_labels.dtype == np.int64


def test_wrong_magic_names_the_file(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"\x00\x01\x02")
    with pytest.raises(DataError, match="bad.idx"):
        read_idx(path)
    good = tmp_path / "labels.idx"
    good.write_bytes(_idx_bytes(np.arange(3), 2049))
    with pytest.raises(DataError, match=r"labels.idx.*magic number 2049; expected 2051"):
        read_idx(good, expected_magic=2051)


@pytest.mark.parametrize("cut", [2, 10, 100])
def test_truncated_file_names_the_file(tmp_path, cut):
    raw = _idx_bytes(np.zeros((4, 28, 28)), 2051)
    path = tmp_path / "trunc-images.gz"
    path.write_bytes(gzip.compress(raw[:-cut] if cut != 2 else raw[:2]))
    with pytest.raises(DataError, match="trunc-images.gz"):
        read_idx(path)
    damaged = tmp_path / "damaged.gz"
    damaged.write_bytes(gzip.compress(raw)[:-cut])
    with pytest.raises(DataError, match="damaged.gz"):
        read_idx(damaged)


def test_image_label_count_mismatch(tmp_path):
    folder = _write_mnist(tmp_path / "m", n_train=10)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros(9), 2049)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz.*10 images.*train-labels-idx1-ubyte.gz.*9"):
        load_mnist(folder)


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_mnist(tmp_path / "nowhere")


# ---------------------------------------------------------------- demo pieces


def test_noisy_data_follows_the_article(synthetic):
    t = prepare_data(synthetic, noise_scale=0.5, seed=3, limit=50)
    clean = torch.from_numpy(synthetic.train_images[:50]).float().unsqueeze(1) / 255
    noise = t["x_train"] - clean
    assert t["x_train"].shape == (50, 1, 28, 28) and t["x_train"].dtype == torch.float32
    assert noise.min() >= 0 and noise.max() < 0.5 + 1e-6 and abs(noise.mean().item() - 0.25) < 0.01
    again = prepare_data(synthetic, noise_scale=0.5, seed=3, limit=50)
    assert torch.equal(t["x_test"], again["x_test"])
    assert not torch.equal(t["x_test"], prepare_data(synthetic, noise_scale=0.5, seed=4, limit=50)["x_test"])


@pytest.mark.parametrize("name", ["drsn-cw", "resnet"])
def test_l2_gradient_equals_autograd_of_keras_penalty(name):
    model = build_model(name, dims=2, preset="seed-mnist", seed=0)
    kernels = regularized_kernels(model)
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    n_dense = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert len(kernels) == n_conv + n_dense == (3 + 1 + (2 if name == "drsn-cw" else 0))
    assert all(p.dim() > 1 for p in kernels)  # kernels only: no bias, no BatchNorm
    l2_penalty(kernels, 1e-4).backward()
    expected = [w.grad.clone() for w in kernels]
    model.zero_grad(set_to_none=True)
    add_l2_grad_(kernels, 1e-4)
    for w, g in zip(kernels, expected):
        assert torch.equal(w.grad, g)  # bit for bit
    penalty = sum(1e-4 * float((w.detach().double() ** 2).sum()) for w in kernels)
    assert float(l2_penalty(kernels, 1e-4).detach()) == pytest.approx(penalty, rel=1e-6)


def test_l2_added_to_data_gradient_matches_penalised_loss():
    model = build_model("drsn-cw", dims=2, preset="seed-mnist", seed=1)
    kernels = regularized_kernels(model)
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    (torch.nn.functional.cross_entropy(model(x), y) + l2_penalty(kernels, 1e-4)).backward()
    expected = [w.grad.clone() for w in kernels]
    model.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    add_l2_grad_(kernels, 1e-4)
    for w, g in zip(kernels, expected):
        torch.testing.assert_close(w.grad, g, rtol=1e-6, atol=1e-9)


def test_same_seed_same_numbers_and_models_share_data(synthetic):
    cfg = DemoConfig(epochs=1, limit=200, num_threads=1)
    a, b = run_demo(synthetic, cfg), run_demo(synthetic, cfg)
    assert [r["final"] for r in a["runs"]] == [r["final"] for r in b["runs"]]
    assert [r["history"][0]["loss"] for r in a["runs"]] == [r["history"][0]["loss"] for r in b["runs"]]
    assert {r["model"] for r in a["runs"]} == {"drsn-cw", "resnet"}
    diff = a["differences"]["drsn-cw - resnet"]["test_acc"]["mean"]
    assert diff == pytest.approx(a["summary"]["drsn-cw"]["test_acc"]["mean"] - a["summary"]["resnet"]["test_acc"]["mean"])
    c = run_demo(synthetic, DemoConfig(epochs=1, limit=200, num_threads=1, seed=1))
    assert [r["final"] for r in c["runs"]] != [r["final"] for r in a["runs"]]


def test_bad_config_values():
    with pytest.raises(ConfigError, match="'epochs'"):
        DemoConfig(epochs=0)
    with pytest.raises(ConfigError, match="'models'.*'vgg'"):
        DemoConfig(models=("vgg",))
    with pytest.raises(ConfigError, match="'precision'.*'float16'"):
        DemoConfig(precision="float16")


@pytest.mark.skipif(not bfloat16_supported(), reason="this CPU has no native bfloat16")
def test_bfloat16_training_keeps_float32_weights_and_learns(synthetic):
    float32 = run_demo(synthetic, DemoConfig(models=("drsn-cw",), epochs=2, limit=200, num_threads=1))
    bf16 = run_demo(synthetic, DemoConfig(models=("drsn-cw",), epochs=2, limit=200, num_threads=1,
                                          precision="bfloat16"), keep_models=True)
    assert bf16["config"]["precision"] == "bfloat16"
    model = bf16["runs"][0]["trained_model"]
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    losses = [row["loss"] for row in bf16["runs"][0]["history"]]
    assert all(np.isfinite(losses)) and losses[1] < losses[0]
    # the same seed, other arithmetic: close to float32 but not the same numbers
    assert losses != [row["loss"] for row in float32["runs"][0]["history"]]
    assert losses[0] == pytest.approx(float32["runs"][0]["history"][0]["loss"], rel=0.05)


def test_bfloat16_needs_native_support(synthetic, monkeypatch):
    monkeypatch.setattr(inference, "bfloat16_supported", lambda: False)
    with pytest.raises(ConfigError, match="'precision'.*native bfloat16"):
        run_demo(synthetic, DemoConfig(models=("resnet",), epochs=1, limit=50, num_threads=1, precision="bfloat16"))


# ---------------------------------------------------------------- CLI


def test_cli_demo_on_real_mnist(mnist_dir, tmp_path, capsys):
    code = main(["mnist-demo", "--data-dir", str(mnist_dir), "--limit", "300", "--epochs", "1",
                 "--threads", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "drsn-cw seed 0 epoch 1/1" in out and "drsn-cw - resnet" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["n_train"] == 300 and results["seeds"] == [0]
    assert results["data"]["files_sha256"]["t10k-labels-idx1-ubyte.gz"].startswith("f7ae60f9")
    assert results["code_revision"] and results["config"]["epochs"] == 1
    for run in results["runs"]:
        assert 0.0 <= run["final"]["test"]["acc"] <= 1.0 and np.isfinite(run["final"]["test"]["loss"])


def test_cli_config_file_is_the_article_protocol(tmp_path):
    from faultdiag.cli import build_parser
    from faultdiag.cli.mnist import build_config

    repo = Path(__file__).resolve().parent.parent
    args = build_parser().parse_args(["mnist-demo", "--config", str(repo / "configs" / "mnist_seed.toml")])
    assert dataclasses_equal(build_config(args), DemoConfig(num_threads=build_config(args).num_threads))
    bad = tmp_path / "bad.toml"
    bad.write_text("[mnist_demo]\nepoch = 3\n")
    assert main(["mnist-demo", "--config", str(bad), "--data-dir", str(tmp_path)]) == 2


def test_cli_missing_data_and_bad_model(synthetic, tmp_path, capsys, monkeypatch):
    folder = Path(synthetic.files["train_images"]).parent
    assert main(["mnist-demo", "--data-dir", str(folder), "--model", "drsn-cw,nope"]) == 2
    assert "'nope'" in capsys.readouterr().err
    code = main(["mnist-demo", "--data-dir", str(folder), "--model", "drsn-cs", "--limit", "100",
                 "--epochs", "1", "--threads", "1", "--no-progress"])
    assert code == 0 and "drsn-cs seed 0 epoch 1/1" in capsys.readouterr().out


def dataclasses_equal(a, b) -> bool:
    import dataclasses

    return dataclasses.asdict(a) == dataclasses.asdict(b)


def test_compile_failure_falls_back_to_eager(synthetic, monkeypatch, caplog):
    def broken_compile(model, **kwargs):
        def fail(x):
            raise RuntimeError("no C++ compiler")
        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    cfg = DemoConfig(models=("resnet",), epochs=1, limit=100, num_threads=1)
    eager = run_demo(synthetic, cfg)
    with caplog.at_level("WARNING"):
        fallback = run_demo(synthetic, DemoConfig(**{**cfg.__dict__, "compile": True}))
    assert "torch.compile failed" in caplog.text
    assert fallback["runs"][0]["final"] == eager["runs"][0]["final"]


def test_batch_stat_evaluation_leaves_running_stats_alone(synthetic):
    from faultdiag.mnist.demo import evaluate

    model = build_model("drsn-cw", dims=2, preset="seed-mnist", seed=0)
    t = prepare_data(synthetic, 0.5, seed=0, limit=100)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = evaluate(model, t["x_test"], t["y_test"], l2=1e-4, batch_size=50, batch_stats=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training  # mode unchanged (a fresh model is in train mode)
    running = evaluate(model, t["x_test"], t["y_test"], l2=1e-4)
    assert batch["ce"] != running["ce"] and 0 <= batch["acc"] <= 1


def test_bn_stats_precise_rescores_and_running_keeps_the_running_averages(synthetic):
    base = dict(epochs=1, limit=200, num_threads=1, models=("drsn-cw",))
    precise = run_demo(synthetic, DemoConfig(**base))["runs"][0]["final"]
    running = run_demo(synthetic, DemoConfig(**base, bn_stats="running"))["runs"][0]["final"]
    # same training (same seed): the running-average score is the same in both runs
    assert precise["test_running_stats"] == running["test_running_stats"] == running["test"]
    # precise statistics are a different (re-estimated) model state
    assert precise["test"] != precise["test_running_stats"]
    with pytest.raises(ConfigError, match="bn_stats"):
        DemoConfig(bn_stats="batch")
