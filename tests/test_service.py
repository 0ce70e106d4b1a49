"""The HTTP service through FastAPI's TestClient, and its web page in a real headless Chromium."""

import shutil
import socket
import threading
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from layersv.enrol import Recognizer  # noqa: E402
from layersv.enrol.service import create_app  # noqa: E402

KEY = {"X-API-Key": "s3cret"}


def _wav(tiny_data, spk, i):
    return sorted((tiny_data / "wav" / spk).glob("*.wav"))[i]


def _up(path, name=None):
    return ("audio", (name or path.name, path.read_bytes(), "audio/wav"))


@pytest.fixture
def service(fbank_stats_run, tmp_path):
    rec = Recognizer(fbank_stats_run, tmp_path / "db" / "speakers.sqlite")
    tmp = tmp_path / "uploads"
    tmp.mkdir()
    app = create_app(rec, api_key="s3cret", max_bytes=300_000, max_sec=3.0, tmp_dir=tmp)
    with TestClient(app) as c:
        yield c, rec, tmp_path


def test_api_enrol_identify_verify_list_delete(service, tiny_data):
    c, rec, root = service
    assert c.get("/").status_code == 200 and "<title>layersv" in c.get("/").text  # the page needs no key
    assert c.get("/api/speakers").status_code == 401
    assert c.get("/api/speakers", headers={"X-API-Key": "wrong"}).status_code == 401
    assert c.post("/api/identify", headers=KEY, files=[_up(_wav(tiny_data, "spk000", 0))]).status_code == 409
    r = c.post("/api/enroll", headers=KEY, data={"name": "alice"},
               files=[_up(_wav(tiny_data, "spk000", 0)), _up(_wav(tiny_data, "spk000", 1))])
    assert r.status_code == 200 and r.json()["added"] == ["spk000_001.wav", "spk000_002.wav"]
    r = c.post("/api/enroll", headers=KEY, data={"name": "bob"}, files=[_up(_wav(tiny_data, "spk001", 0))])
    assert r.json()["new"] and r.json()["utterances"] == 1
    assert [s["name"] for s in c.get("/api/speakers", headers=KEY).json()["speakers"]] == ["alice", "bob"]
    test = _wav(tiny_data, "spk000", 3)
    r = c.post("/api/identify", headers=KEY, data={"top": "2"}, files=[_up(test)]).json()
    assert {t["name"] for t in r["top"]} == {"alice", "bob"} and r["calibrated"] and "threshold" in r
    direct = rec.identify(test, top=2)
    assert [t["score"] for t in r["top"]] == pytest.approx([t["score"] for t in direct["top"]])
    v = c.post("/api/verify", headers=KEY, data={"name": "alice"}, files=[_up(test)]).json()
    assert v["score"] == pytest.approx(next(t["score"] for t in r["top"] if t["name"] == "alice"))
    assert set(v) >= {"accept", "posterior", "threshold", "stage"}
    assert c.delete("/api/speakers/bob", headers=KEY).json()["deleted"]
    assert c.delete("/api/speakers/bob", headers=KEY).status_code == 404
    info = c.get("/api/info", headers=KEY).json()
    assert info["speakers"] == 1 and info["api_key_required"] and info["stage"] == "qmf"


def test_api_errors_and_limits(service, tiny_data):
    c, rec, root = service
    tmp_path = root / "inputs"  # the test's own audio, outside what the service may write
    tmp_path.mkdir()
    c.post("/api/enroll", headers=KEY, data={"name": "alice"}, files=[_up(_wav(tiny_data, "spk000", 0))])
    test = _wav(tiny_data, "spk000", 3)
    r = c.post("/api/verify", headers=KEY, data={"name": "nobody"}, files=[_up(test)])
    assert r.status_code == 404 and "not enrolled" in r.json()["detail"]
    r = c.post("/api/identify", headers=KEY, files=[("audio", ("junk.wav", b"RIFF....garbage" * 50, "audio/wav"))])
    assert r.status_code == 422 and r.json()["detail"].startswith("junk.wav: unreadable audio")
    sf.write(tmp_path / "short.wav", np.full(1600, 0.1, np.float32), 16000)
    r = c.post("/api/identify", headers=KEY, files=[_up(tmp_path / "short.wav")])
    assert r.status_code == 422 and "short.wav: too short" in r.json()["detail"]
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    r = c.post("/api/enroll", headers=KEY, data={"name": "zed"}, files=[_up(tmp_path / "silent.wav")])
    assert r.status_code == 422 and "silent.wav: digital silence" in r.json()["detail"]
    sf.write(tmp_path / "long.wav", np.random.default_rng(0).normal(0, 0.1, 8000 * 5).astype(np.float32), 8000)
    r = c.post("/api/identify", headers=KEY, files=[_up(tmp_path / "long.wav")])  # 5 s > 3 s
    assert r.status_code == 413 and "longer than the 3 s limit" in r.json()["detail"]
    r = c.post("/api/enroll", headers=KEY, data={"name": "alice"},  # enrol takes several files per request
               files=[_up(test), ("audio", ("big.wav", b"\0" * 400_000, "audio/wav"))])
    assert r.status_code == 413 and "big.wav: larger than" in r.json()["detail"]
    r = c.post("/api/identify", headers=KEY, files=[("audio", ("huge.wav", b"\0" * 400_000, "audio/wav"))])
    assert r.status_code == 413 and "request body" in r.json()["detail"]  # refused before parsing
    chunked = (b"\0" * 100_000 for _ in range(5))  # no Content-Length: counted while it streams
    r = c.post("/api/identify", headers={**KEY, "content-type": "multipart/form-data; boundary=b"}, content=chunked)
    assert r.status_code == 413 and "request body exceeds" in r.json()["detail"]
    r = c.post("/api/enroll", headers=KEY, data={"name": " bad name"}, files=[_up(test)])
    assert r.status_code == 400 and "invalid speaker name" in r.json()["detail"]
    assert c.post("/api/identify", headers=KEY, data={"top": "0"}, files=[_up(test)]).status_code == 422
    # nothing written but the database (and its WAL files) and the emptied upload folder
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                     if p.is_file() and tmp_path not in p.parents)
    assert all(w.startswith("db/speakers.sqlite") for w in written), written
    assert not any(p.is_file() for p in (root / "uploads").rglob("*"))
    assert rec.db.speakers()[0].n_utts == 1  # failed requests changed nothing


def test_api_without_key_and_concurrent_requests(fbank_stats_run, tiny_data, tmp_path):
    rec = Recognizer(fbank_stats_run, tmp_path / "db.sqlite")
    with TestClient(create_app(rec)) as c:
        spks = [f"spk00{i}" for i in range(4)]
        out = {}

        def enrol(s):
            out[s] = c.post("/api/enroll", data={"name": s}, files=[_up(_wav(tiny_data, s, 0))]).status_code

        threads = [threading.Thread(target=enrol, args=(s,)) for s in spks]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert out == {s: 200 for s in spks}
        assert c.get("/api/info").json()["speakers"] == 4


# ----------------------------------------------------------------------------- the page in a real browser

CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1200,1000",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # a synthetic microphone


def _browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        pytest.skip("chromium and chromedriver are not installed")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for f in CHROME_FLAGS + [f"--user-data-dir={tmp_path / 'chrome-profile'}"]:
        opts.add_argument(f)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture
def live_server(fbank_stats_run, tiny_data, tmp_path):
    uvicorn = pytest.importorskip("uvicorn")
    rec = Recognizer(fbank_stats_run, tmp_path / "db.sqlite")
    for s in ("spk000", "spk001", "spk002"):
        rec.enroll(s, [_wav(tiny_data, s, 0), _wav(tiny_data, s, 1)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(rec), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", rec
    server.should_exit = True
    t.join(10)


def test_page_uploads_a_file_and_shows_the_result(live_server, tiny_data, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, rec = live_server
    driver = _browser(tmp_path)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: "3 enrolled" in d.find_element(By.ID, "info").text)
        driver.find_element(By.ID, "file").send_keys(str(_wav(tiny_data, "spk001", 3)))
        driver.find_element(By.ID, "top").clear()
        driver.find_element(By.ID, "top").send_keys("3")
        driver.find_element(By.ID, "identify").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#top-table tbody tr"))
        decision = driver.find_element(By.ID, "decision").text
        assert decision.startswith(("Identified: ", "Unknown speaker")), decision
        rows = [r.text.split("\n")[0].split()[0] for r in driver.find_elements(By.CSS_SELECTOR, "#top-table tbody tr")]
        expected = rec.identify(_wav(tiny_data, "spk001", 3), top=3)
        assert rows == [t["name"] for t in expected["top"]]
        assert "LLR" in driver.find_element(By.ID, "details").text
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
        # enrol through the page: the speaker list updates
        driver.find_element(By.ID, "ename").send_keys("dora")
        driver.find_element(By.ID, "enroll").click()
        wait.until(lambda d: "dora" in d.find_element(By.ID, "speakers").text)
        assert "Enrolled dora" in driver.find_element(By.ID, "decision").text
        assert not driver.find_element(By.ID, "error").is_displayed()
        # record from the (fake) microphone: MediaRecorder → WebAudio decode → WAV upload → a result
        driver.find_element(By.ID, "rec").click()
        wait.until(lambda d: "Stop" in d.find_element(By.ID, "rec").text)
        time.sleep(1.5)
        driver.find_element(By.ID, "rec").click()
        wait.until(lambda d: d.find_element(By.ID, "clip").text.startswith("recording.wav"))
        driver.find_element(By.ID, "identify").click()
        wait.until(lambda d: "of audio" in d.find_element(By.ID, "details").text and
                   d.find_element(By.ID, "identify").is_enabled())
        assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error").text
        seconds = float(driver.find_element(By.ID, "details").text.split(" s of audio")[0].rsplit(" ", 1)[1])
        assert 1.0 < seconds < 5.0  # the recorded clip reached the server as audio of the right length
    finally:
        driver.quit()
    assert [s["name"] for s in rec.speakers()] == ["dora", "spk000", "spk001", "spk002"]
