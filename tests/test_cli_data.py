"""``faultdiag data inspect | download | simulate`` through faultdiag.cli.main."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from faultdiag.cli import main
from faultdiag.data import download


def _inspect_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["data", "inspect", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_inspect_real_cwru_folder(cwru_dir: Path, capsys):
    code, out = _inspect_json(capsys, str(cwru_dir))
    assert code == 0 and out["unreadable"] == []
    rows = {r["file"]: r for r in out["recordings"]}
    assert len(rows) == 61
    for name, row in rows.items():
        number = int(Path(name).stem.rsplit("_", 1)[1])
        assert row["cwru_number"] == number
        assert row["load_hp"] == int(Path(name).stem.split("_")[-2])
        assert row["fs_hz"] == (48000 if number == 97 else 12000)
        if number != 97:
            cls = Path(name).stem.split("_")[-3]
            assert row["label"] == cls
            assert row["diameter_in"] == int(cls.split("@")[0].lstrip("IRBO")) / 1000
            assert row["fault"] == {"IR": "inner_race", "B": "ball", "OR": "outer_race"}[re.match(r"[A-Z]+", cls)[0]]
    assert rows["normal_0_97.mat"]["label"] == "normal" and rows["normal_0_97.mat"]["samples"] == 243938


def test_inspect_table_and_bad_file(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    savemat(tmp_path / "105.mat", {"X105_DE_time": rng.standard_normal((1200, 1)), "X105RPM": np.array([[1797.0]])})
    (tmp_path / "zz_broken.mat").write_bytes(b"MATLAB 5.0 MAT-file, but truncated")
    code = main(["data", "inspect", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["file", "channels", "fs_hz", "samples", "seconds", "label", "train_label", "rpm", "load_hp"]
    assert lines[1].split() == ["105.mat", "DE", "12000", "1200", "0.100", "IR007", tmp_path.name, "1797", "0"]
    assert "warning: every recording got the label" in out  # one folder: one class
    assert "unreadable: zz_broken.mat" in out
    code, data = _inspect_json(capsys, str(tmp_path / "105.mat"), str(tmp_path / "zz_broken.mat"))
    assert code == 1 and len(data["recordings"]) == 1 and data["unreadable"][0]["error"]


def test_download_command(tmp_path: Path, capsys, monkeypatch):
    body = b"0123456789" * 1000

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path != "/m/x.bin":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        files = (download.RemoteFile("x.bin", hashlib.sha256(body).hexdigest()),)
        monkeypatch.setitem(download.DATASETS, "mnist", {"mirrors": ("http://127.0.0.1:9/",), "files": files})
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        code = main(["data", "download", "mnist", "--dest", str(tmp_path), "--no-progress",
                     "--base-url", f"{base}/dead", "--base-url", f"{base}/m/"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 0 and (tmp_path / "x.bin").read_bytes() == body
    assert "1 file(s)" in capsys.readouterr().out


def test_simulate_command(tmp_path: Path, capsys):
    pytest.importorskip("faultdiag.data.simulate")
    code = main(["data", "simulate", "--out", str(tmp_path), "--seed", "1", "--duration-s", "0.2"])
    assert code == 0
    written = sorted(tmp_path.glob("*/*.csv"))
    assert written and f"{len(written)} simulated" in capsys.readouterr().out
    from faultdiag.data.simulate import SIM_CLASSES
    assert {p.parent.name for p in written} == set(SIM_CLASSES)  # class sub-folders
    code, data = _inspect_json(capsys, str(tmp_path))
    assert code == 0 and len(data["recordings"]) == len(written)
    assert all(abs(r["seconds"] - 0.2) < 0.01 for r in data["recordings"])


def test_inspect_shows_train_labels_and_layout_warnings(tmp_path: Path, capsys):
    """class/rig/file layout: the parent folder (rig) is a wrong label; folder:1 is right."""
    rng = np.random.default_rng(0)
    for cls in ("IR", "OR"):
        for rig in ("rigA", "rigB"):
            (tmp_path / cls / rig).mkdir(parents=True)
            for rpm in (600, 900):
                savemat(tmp_path / cls / rig / f"{cls}_{rpm}.mat", {"x": rng.standard_normal((500, 1)), "fs": 1000.0})
    (tmp_path / "labels.csv").write_text("file,label\nIR/rigA/IR_600.mat,IR\n")  # a file table: not a recording
    code, out = _inspect_json(capsys, str(tmp_path))
    assert code == 0 and len(out["recordings"]) == 8
    assert {r["train_label"] for r in out["recordings"]} == {"rigA", "rigB"}
    assert any("occur under several labels" in w for w in out["warnings"])
    code, out = _inspect_json(capsys, str(tmp_path), "--label-from", "folder:1")
    assert {r["train_label"] for r in out["recordings"]} == {"IR", "OR"} and out["warnings"] == []
    assert main(["data", "inspect", str(tmp_path), "--label-from", "folder:1"]) == 0
    assert "train labels: IR (4), OR (4)" in capsys.readouterr().out


def test_inspect_a_config_and_grouped_failures(tmp_path: Path, capsys, shared_data):
    hitsm = shared_data / "hitsm"
    if not (hitsm / "self_built").is_dir():
        pytest.skip("HIT-SM files not in the shared data")
    code, out = _inspect_json(capsys, "--config", "configs/hitsm.toml", "--set", f'data.data_dir="{hitsm}"',
                              "--set", "data.speeds_rpm=[600]")
    assert code == 0 and len(out["recordings"]) == 7
    assert {r["train_label"] for r in out["recordings"]} == {"Normal", "IR2", "IR5", "IR8", "OR2", "OR5", "OR8"}
    assert main(["data", "inspect", str(hitsm / "self_built")]) == 1  # no rate in the files
    text = capsys.readouterr().out
    assert text.count("does not state its sampling rate") == 1 and "21 files (" in text
    assert "data.source = 'hitsm'" in text
