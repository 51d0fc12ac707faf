"""download_file / download_dataset against a local HTTP server (127.0.0.1, port 0)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from faultdiag.data import download
from faultdiag.errors import ConfigError, DataError


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    log: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.log.append((self.path, self.headers.get("Range")))
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng := self.headers.get("Range"):
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture()
def server():
    _Handler.files, _Handler.log = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


BODY = bytes(range(256)) * 400  # 102400 bytes
SHA = hashlib.sha256(BODY).hexdigest()


def test_good_download_then_skip(server, tmp_path: Path):
    url, handler = server
    handler.files["/a/x.bin"] = BODY
    dest = download.download_file(f"{url}/a/x.bin", tmp_path / "x.bin", SHA, progress=False)
    assert dest.read_bytes() == BODY and not (tmp_path / "x.bin.part").exists()
    download.download_file(f"{url}/a/x.bin", dest, SHA, progress=False)
    assert len(handler.log) == 1  # the verified file was not fetched again


def test_checksum_mismatch_refused_and_removed(server, tmp_path: Path):
    url, handler = server
    handler.files["/x.bin"] = BODY[:-1] + b"!"
    with pytest.raises(DataError, match=f"x.bin.*{SHA}") as info:
        download.download_file(f"{url}/x.bin", tmp_path / "x.bin", SHA, progress=False)
    assert hashlib.sha256(handler.files["/x.bin"]).hexdigest() in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_resume_requests_only_the_rest(server, tmp_path: Path):
    url, handler = server
    handler.files["/x.bin"] = BODY
    (tmp_path / "x.bin.part").write_bytes(BODY[:40000])
    dest = download.download_file(f"{url}/x.bin", tmp_path / "x.bin", SHA, progress=False)
    assert dest.read_bytes() == BODY
    assert handler.log == [("/x.bin", "bytes=40000-")]


def test_unknown_checksum_policy(server, tmp_path: Path, caplog):
    url, handler = server
    handler.files["/x.bin"] = BODY
    with pytest.raises(ConfigError, match="allow_unverified"):
        download.download_file(f"{url}/x.bin", tmp_path / "x.bin", None, progress=False)
    assert handler.log == []
    download.download_file(f"{url}/x.bin", tmp_path / "x.bin", None, progress=False, allow_unverified=True)
    assert SHA in caplog.text and (tmp_path / "x.bin").read_bytes() == BODY


def test_present_file_with_wrong_checksum_is_kept_and_reported(tmp_path: Path):
    (tmp_path / "x.bin").write_bytes(b"other")
    with pytest.raises(DataError, match="delete it"):
        download.download_file("http://127.0.0.1:9/x.bin", tmp_path / "x.bin", SHA, progress=False)
    assert (tmp_path / "x.bin").read_bytes() == b"other"


def test_dataset_mirror_fallback_after_404(server, tmp_path: Path, monkeypatch):
    url, handler = server
    other = b"second file" * 10
    handler.files.update({"/good/x.bin": BODY, "/good/y.bin": other})
    files = (download.RemoteFile("x.bin", SHA), download.RemoteFile("y.bin", hashlib.sha256(other).hexdigest()))
    monkeypatch.setitem(download.DATASETS, "toy", {"mirrors": (f"{url}/dead/", f"{url}/good/"), "files": files})
    paths = download.download_dataset("toy", tmp_path / "out", progress=False)
    assert [p.name for p in paths] == ["x.bin", "y.bin"] and paths[1].read_bytes() == other
    assert [p for p, _ in handler.log] == ["/dead/x.bin", "/good/x.bin", "/dead/y.bin", "/good/y.bin"]
    with pytest.raises(DataError, match="z.bin"):
        monkeypatch.setitem(download.DATASETS, "toy", {"mirrors": (f"{url}/dead",), "files": files + (download.RemoteFile("z.bin", SHA),)})
        download.download_dataset("toy", tmp_path / "out", progress=False)


def test_dataset_catalogue():
    cwru = {f.name: f.sha256 for f in download.DATASETS["cwru"]["files"]}
    assert len(cwru) == 161 and sum(bool(s) for s in cwru.values()) == 61
    assert cwru["97.mat"].startswith("16bf48ba") and cwru["98.mat"] is None
    assert download.DATASETS["cwru"]["mirrors"] == ("https://engineering.case.edu/sites/default/files/",)
    assert all(f.sha256 for f in download.DATASETS["mnist"]["files"])
    with pytest.raises(ConfigError, match="foo"):
        download.download_dataset("foo", "x")
    with pytest.raises(ConfigError, match="12345.mat"):
        download.download_dataset("cwru", "x", files=["97", "12345"])
