"""The reviewer page in a real headless Chromium: sign in with a key, review from the
keyboard (A confirms, R + number rejects with a reason, C + number changes the class,
M + a drag + number boxes a miss, arrows move), counters follow, and the page speaks
Chinese by default."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import (
    drive_track,
    drive_video,
    job_done,
    keys,
    service_settings,
    wait_until,
)

from streetwatch.service.app import create_app
from streetwatch.service.settings import Settings


def browser_binaries() -> tuple[str, str]:
    """Debian's chromium and chromedriver; installed when this runs as root with apt."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if (not chromium or not driver) and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"],
                       check=False, capture_output=True, timeout=600)
        chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver), which could not be installed here")
    return chromium, driver


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[str, TestClient]]:
    """The service on a real port (a browser needs one), with two pending photos' worth of
    work done."""
    import uvicorn

    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]
    client = TestClient(app)
    ok, data = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    assert ok
    ingest = keys(client, "ingest")
    job = client.post("/v1/uploads/photos", headers=ingest, files=[
        ("files", (f"p{i}.jpg", io.BytesIO(data.tobytes()), "image/jpeg")) for i in range(2)
    ]).json()
    reviewer = keys(client, "reviewer")
    assert wait_until(lambda: job_done(client, job["job_id"], reviewer))
    try:
        yield f"http://127.0.0.1:{port}", client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, TestClient]]:
    """Two pending ground-lock cases."""
    with serving(service_settings(tmp_path, "ground_lock")) as served:
        yield served


def page_text(driver: Any, element_id: str) -> str:
    """An element's text, read in one script call: the page re-renders the queue as it
    changes, so a found element can go stale before ``.text`` is read."""
    return str(driver.execute_script(
        "const e = document.getElementById(arguments[0]);"
        "return e ? e.innerText.trim() : null;", element_id))


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def box_a_miss(driver: Any, client: TestClient, text: Callable[[str], str]) -> None:
    """M, a drag on the evidence, a class: a box around something the model missed."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.find_element(By.TAG_NAME, "body").send_keys("m")
    evidence = driver.find_element(By.ID, "frame")
    ActionChains(driver).move_to_element_with_offset(evidence, -60, -40).click_and_hold() \
        .move_by_offset(40, 30).release().perform()
    assert wait_until(lambda: driver.find_element(By.ID, "chooser").is_displayed())
    driver.find_element(By.TAG_NAME, "body").send_keys("6")  # vehicle
    assert wait_until(lambda: text("message") == "已添加漏检框")
    scale: Any = driver.execute_script(
        "const i = document.getElementById('frame');"
        "return i.naturalWidth / i.getBoundingClientRect().width")
    reviewer = keys(client, "reviewer")
    pending = client.get("/v1/cases", headers=reviewer).json()["items"]
    [added] = client.get(f"/v1/frames/{pending[0]['frame']}", headers=reviewer).json()["added"]
    x1, y1, x2, y2 = added["box"]
    assert added["category"] == "vehicle" and added["who"] == "王审核"
    assert abs((x2 - x1) - 40 * scale) <= 2 and abs((y2 - y1) - 30 * scale) <= 2


@pytest.mark.timeout(120)
def test_a_reviewer_works_through_the_queue_from_the_keyboard(
        served: tuple[str, TestClient], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, client = served
    key = keys(client, "reviewer", "王审核")["Authorization"].removeprefix("Bearer ")
    driver = browser
    driver.get(f"{base}/review")
    find = driver.find_element

    text = partial(page_text, driver)

    assert wait_until(lambda: find(By.ID, "login").is_displayed())
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    find(By.ID, "key").send_keys(key + Keys.ENTER)
    assert wait_until(lambda: text("count-pending") == "待审核 2")
    assert text("who") == "王审核" and text("current-category") == "私装地锁"
    image: Any = driver.execute_script(
        "return document.getElementById('frame').naturalWidth")
    assert image == 160  # evidence loads with the session cookie
    # the case's box is drawn over its frame, where the model put it, with its class
    drawn: Any = driver.execute_script(
        "const f = document.getElementById('frame').getBoundingClientRect(),"
        " b = document.getElementById('box').getBoundingClientRect(), s = 160 / f.width;"
        "return [b.left - f.left, b.top - f.top, b.right - f.left, b.bottom - f.top]"
        ".map((v) => v * s)")
    assert all(abs(got - want) <= 3 for got, want in zip(drawn, (60, 70, 100, 90), strict=True))
    assert text("box").startswith("私装地锁 0.8")

    box_a_miss(driver, client, text)
    body = find(By.TAG_NAME, "body")
    body.send_keys("a")
    assert wait_until(lambda: text("count-confirmed") == "已确认 1")
    body.send_keys("c")
    body.send_keys("1")  # street_vending
    assert wait_until(lambda: text("current-category") == "占道经营")
    body.send_keys("r")
    body.send_keys("1")  # false_positive
    assert wait_until(lambda: text("count-rejected") == "已驳回 1")
    assert wait_until(lambda: text("count-pending") == "待审核 0")

    find(By.ID, "lang").click()
    assert wait_until(lambda: text("count-pending") == "Pending 0")
    reviewer = keys(client, "reviewer")
    rejected = client.get("/v1/cases", headers=reviewer,
                          params={"status": "rejected"}).json()["items"]
    assert [c["category"] for c in rejected] == ["street_vending"]
    audit = client.get(f"/v1/cases/{rejected[0]['id']}/audit", headers=reviewer).json()
    assert audit[-1]["who"] == "王审核" and audit[-1]["details"]["reason"] == \
        "false_positive"


def test_a_wrong_key_does_not_sign_in(served: tuple[str, TestClient]) -> None:
    _, client = served
    refused = client.post("/v1/session", json={"key": "sw_wrong"})
    assert refused.status_code == 401
    ingest = keys(client, "ingest")["Authorization"].removeprefix("Bearer ")
    assert client.post("/v1/session", json={"key": ingest}).status_code == 401


def box_a_miss_on_a_sample(driver: Any, client: TestClient, text: Callable[[str], str],
                           category_number: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.find_element(By.TAG_NAME, "body").send_keys("m")
    ActionChains(driver).move_to_element_with_offset(
        driver.find_element(By.ID, "frame"), 0, 0).click_and_hold() \
        .move_by_offset(30, 20).release().perform()
    assert wait_until(lambda: driver.find_element(By.ID, "chooser").is_displayed())
    driver.find_element(By.TAG_NAME, "body").send_keys(category_number)
    assert wait_until(lambda: text("message") == "已添加漏检框")
    assert text("added") == "1"


@pytest.mark.timeout(120)
def test_a_reviewer_looks_over_frames_without_candidates(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    # a model that only sees a vehicle: no case; every frame is sampled (both photos are
    # the same picture: one frame)
    settings = service_settings(tmp_path, "vehicle", sample_rate=1.0)
    with serving(settings) as (base, client):
        reviewer = keys(client, "reviewer", "王审核")
        key = reviewer["Authorization"].removeprefix("Bearer ")
        [sample] = client.get("/v1/review/samples", headers=reviewer).json()["items"]
        driver = browser
        driver.get(f"{base}/review")

        text = partial(page_text, driver)

        assert wait_until(lambda: driver.find_element(By.ID, "login").is_displayed())
        driver.find_element(By.ID, "key").send_keys(key + Keys.ENTER)
        assert wait_until(lambda: text("count-pending") == "待审核 0")
        driver.find_element(By.ID, "mode").click()
        assert wait_until(lambda: text("mode") == "待审核案件")
        box_a_miss_on_a_sample(driver, client, text, "3")  # ground_lock
        driver.find_element(By.TAG_NAME, "body").send_keys("n")  # nothing else: next
        assert wait_until(lambda: text("empty") == "没有待抽查的画面")
        assert client.get("/v1/review/samples", headers=reviewer).json()["total"] == 0
        frame = client.get(f"/v1/frames/{sample['sha256']}", headers=reviewer).json()
        assert [a["category"] for a in frame["added"]] == ["ground_lock"]
        assert frame["reviewed_by"] == "王审核"


def test_a_video_case_plays_its_clip_and_a_photo_case_has_none(
        served: tuple[str, TestClient], browser: Any, tmp_path: Path) -> None:
    """The clip is WebM (VP8): the browser must really decode it, not only get a URL."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, client = served
    job = client.post("/v1/uploads/videos", headers=keys(client, "ingest"),
                      data={"vehicle_id": "patrol-2", "fps": "2"}, files=[
                          ("video", ("d.mp4", io.BytesIO(drive_video(tmp_path / "d.mp4")),
                                     "video/mp4")),
                          ("track", ("t.csv", io.BytesIO(drive_track()), "text/csv"))]).json()
    reviewer = keys(client, "reviewer")
    assert wait_until(lambda: job_done(client, job["job_id"], reviewer))
    driver = browser
    driver.get(f"{base}/review")
    key = keys(client, "reviewer", "li")["Authorization"].removeprefix("Bearer ")
    assert wait_until(lambda: driver.find_element(By.ID, "login").is_displayed())
    driver.find_element(By.ID, "key").send_keys(key + Keys.ENTER)
    assert wait_until(lambda: page_text(driver, "count-pending") == "待审核 3")

    def clip_state() -> dict[str, Any]:
        state: dict[str, Any] = driver.execute_script(
            "const v = document.getElementById('clip');"
            "return {hidden: v.hidden, ready: v.readyState, width: v.videoWidth};")
        return state

    def showing(i: int) -> bool:
        return bool(driver.execute_script(
            "const c = document.querySelector('#queue .current');"
            "return c !== null && c.dataset.i === arguments[0];", str(i)))

    seen = set()
    body = driver.find_element(By.TAG_NAME, "body")
    for i in range(3):  # the queue's order is by confidence: look at each case
        assert wait_until(partial(showing, i))
        state = clip_state()
        if state["hidden"]:
            seen.add("photo")
        else:
            assert wait_until(lambda: clip_state()["ready"] >= 1)  # metadata decoded
            assert clip_state()["width"] == 160
            seen.add("video")
        body.send_keys(Keys.ARROW_RIGHT)
    assert seen == {"photo", "video"}
