import numpy as np
import pytest

from faultdiag.data.recording import Recording
from faultdiag.data.windows import WindowSet, frame, group_kfold, split_windows, time_regions
from faultdiag.errors import ConfigError, DataError


def _recordings(lengths=(5000, 6100, 4321), channels=2, labels=("a", "b", "a")):
    rng = np.random.default_rng(0)
    return [
        Recording(rng.standard_normal((channels, n)).astype(np.float32), 1000.0, [f"c{j}" for j in range(channels)],
                  label=lab, source=f"/d/rec{i}.csv")
        for i, (n, lab) in enumerate(zip(lengths, labels))
    ]


def test_frame_is_zero_copy_view_with_right_content():
    sig = np.arange(2 * 20, dtype=np.float32).reshape(2, 20)
    w = frame(sig, window_len=6, hop=4)
    assert w.shape == (4, 2, 6)  # (20 - 6) // 4 + 1
    assert np.shares_memory(w, sig)
    assert not w.flags.writeable
    for n in range(4):
        np.testing.assert_array_equal(w[n], sig[:, 4 * n : 4 * n + 6])


def test_frame_accepts_recording_and_1d():
    rec = _recordings()[0]
    assert frame(rec, 100, 100).shape == (50, 2, 100)
    assert frame(np.zeros(10), 5, 5).shape == (2, 1, 5)


@pytest.mark.parametrize("kw,msg", [
    (dict(window_len=-3, hop=1), "The 'window_len' parameter must be a positive int; got -3."),
    (dict(window_len=4, hop=0), "The 'hop' parameter must be a positive int; got 0."),
    (dict(window_len=2.5, hop=1), "'window_len'"),
    (dict(window_len=True, hop=1), "'window_len'"),
])
def test_frame_rejects_bad_parameters(kw, msg):
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        frame(np.zeros((1, 10)), **kw)


def test_frame_short_recording_names_it():
    rec = Recording(np.zeros((1, 50), np.float32), 100.0, ["x"], source="/d/short.mat")
    with pytest.raises(DataError, match=r"short\.mat.*50 samples.*window_len=64"):
        frame(rec, 64, 32)


def test_time_regions_cover_and_order():
    reg = time_regions(1000, (0.7, 0.15, 0.15), window_len=100)
    assert reg == {"train": (0, 700), "val": (700, 850), "test": (850, 1000)}
    reg = time_regions(1000, (0.2, 0.8), window_len=10, order=("test", "train"))
    assert reg == {"test": (0, 200), "train": (200, 1000)}


def test_time_regions_errors():
    with pytest.raises(DataError, match=r"'test' region.*fewer than one window"):
        time_regions(1000, (0.7, 0.25, 0.05), window_len=100)
    with pytest.raises(ConfigError, match="sum to 1"):
        time_regions(1000, (0.7, 0.2, 0.2), window_len=10)
    with pytest.raises(ConfigError, match="'ratios'"):
        time_regions(1000, (0.5, 0.5), window_len=10)
    assert time_regions(1000, (0.8, 0.0, 0.2), window_len=10)["val"] == (800, 800)


def _windows_of(ws, g):
    m = ws.groups == g
    return ws.starts[m]


@pytest.mark.parametrize("ratios", [(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.34, 0.33, 0.33)])
@pytest.mark.parametrize("window_len,hop", [(256, 32), (256, 256), (100, 7), (128, 300)])
def test_no_test_sample_inside_a_training_window(ratios, window_len, hop):
    recs = _recordings()
    sets = split_windows(recs, ("a", "b"), window_len, hop, ratios=ratios, eval_hop=window_len // 2)
    L = window_len
    for g, rec in enumerate(recs):
        train = _windows_of(sets["train"], g)
        covered = np.zeros(rec.n_samples, bool)
        for s in train:
            covered[s : s + L] = True
        for split in ("val", "test"):
            ev = _windows_of(sets[split], g)
            assert len(ev) > 0
            for s in ev:
                assert not covered[s : s + L].any()
        # content matches the recording at the recorded start
        for split in ("train", "test"):
            ws = sets[split]
            idx = np.flatnonzero(ws.groups == g)[[0, -1]]
            for i in idx:
                np.testing.assert_array_equal(ws.X[i], rec.signal[:, ws.starts[i] : ws.starts[i] + L])
    # val and test of one recording do not overlap either
    for g in range(len(recs)):
        v, t = _windows_of(sets["val"], g), _windows_of(sets["test"], g)
        assert v.max() + L <= t.min()


def test_split_windows_shapes_dtypes_labels():
    recs = _recordings()
    sets = split_windows(recs, ["a", "b"], 200, 100)
    for ws in sets.values():
        assert ws.X.dtype == np.float32 and ws.X.flags.c_contiguous
        assert ws.y.dtype == ws.groups.dtype == ws.starts.dtype == np.int64
        assert ws.X.shape[1:] == (2, 200)
        assert ws.class_names == ("a", "b")
        np.testing.assert_array_equal(ws.y, np.where(ws.groups == 1, 1, 0))
    # default eval hop = window_len: non-overlapping val/test windows
    st = _windows_of(sets["test"], 0)
    assert np.all(np.diff(st) == 200)
    assert np.all(np.diff(_windows_of(sets["train"], 0)) == 100)


def test_split_windows_label_errors():
    recs = _recordings()
    with pytest.raises(DataError, match=r"rec1\.csv.*'b'.*known classes are \['a', 'c'\]"):
        split_windows(recs, ["a", "c"], 100, 50)
    with pytest.raises(DataError, match=r"rec0\.csv has no label"):
        split_windows([recs[0].with_label(None)], ["a"], 100, 50)
    with pytest.raises(DataError, match=r"Cannot split rec0\.csv.*'val' region"):
        split_windows(recs[:1], ["a"], 1000, 50)


def test_windowset_subset_concat_len():
    ws = split_windows(_recordings(), ["a", "b"], 100, 100)["train"]
    a, b = ws.subset(np.arange(5)), ws.subset(ws.groups == 2)
    both = WindowSet.concat([a, b])
    assert len(both) == 5 + len(b)
    np.testing.assert_array_equal(both.starts[5:], b.starts)
    with pytest.raises(DataError, match="'y' must have shape"):
        WindowSet(np.zeros((3, 1, 4)), np.zeros(2), np.zeros(3), np.zeros(3), ("a",))


@pytest.mark.parametrize("seed", [None, 0, 1])
def test_group_kfold_no_group_in_two_folds(seed):
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(11), rng.integers(5, 40, size=11))
    folds = group_kfold(groups, 4, seed=seed)
    assert len(folds) == 4
    seen = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(seen), np.arange(len(groups)))  # each item tested once
    for tr, te in folds:
        assert set(groups[tr]).isdisjoint(groups[te])
        assert len(tr) + len(te) == len(groups)
    fold_sets = [set(groups[te]) for _, te in folds]
    for i in range(4):
        for j in range(i + 1, 4):
            assert fold_sets[i].isdisjoint(fold_sets[j])


def test_group_kfold_seed_reproducible_and_errors():
    groups = np.repeat(np.arange(8), 10)
    a = group_kfold(groups, 4, seed=5)
    b = group_kfold(groups, 4, seed=5)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    different = [group_kfold(groups, 4, seed=s)[0][1] for s in range(6)]
    assert any(not np.array_equal(different[0], d) for d in different[1:])
    with pytest.raises(ConfigError, match=r"'n_splits'.*\[2, 8\].*got 9"):
        group_kfold(groups, 9)


def test_split_real_cwru_files_without_leakage(cwru_dir):
    from scipy.io import loadmat

    recs = []
    for label, pattern in (("B007", "12k_Drive_End_B007_0_*.mat"), ("IR007", "12k_Drive_End_IR007_0_*.mat")):
        path = sorted(cwru_dir.glob(pattern))[0]
        mat = loadmat(path)
        de = next(v for k, v in mat.items() if k.endswith("_DE_time"))
        recs.append(Recording(de.ravel(), 12000.0, ["DE"], label=label, source=str(path)))
    sets = split_windows(recs, ["B007", "IR007"], 2048, 256)
    for g, rec in enumerate(recs):
        train_end = _windows_of(sets["train"], g).max() + 2048
        assert train_end <= _windows_of(sets["val"], g).min()
        assert _windows_of(sets["val"], g).max() + 2048 <= _windows_of(sets["test"], g).min()
        assert _windows_of(sets["test"], g).max() + 2048 <= rec.n_samples
    assert len(sets["train"]) > 4 * len(sets["test"]) > 0
