"""Service throughput under concurrent uploads, against the bare detector on the same images.

    .venv/bin/python benchmarks/service_load.py [--uploaders 4] [--photos 48] [--rounds 3]

Starts ``streetwatch serve`` on a temporary SQLite database with the promoted model (the
artefact ``STREETWATCH_MODEL_KIND`` names, for the bare detector too), and in
each round has K threads upload generated 1280x720 street photos one per request until
every job is done, in two passes of photos of their own: clients that then wait for the
job with one long-polling request (``GET /v1/jobs/{id}?wait=60``), and clients whose upload
itself waits (``POST /v1/uploads/photos?wait=60``: one request a photo). Each pass
measures photos per second end to end (upload, store, queue, detect, write cases) against
the bare ``Detector`` on the same images (decoding them too), passed before and after the
service's passes, so a ratio compares runs seconds apart: this shared machine's speed drifts
by tens of percent within minutes, and one ratio of two separate runs is mostly that drift.
It prints every round's ratio and their median, and the p50/p95 latency from upload to job done. The
bare detector is one call at a time with the default settings (every core); the service
runs one detector per job thread (``STREETWATCH_WORKERS``), so it is also compared with
that many bare detectors side by side. Beside the rates it prints the CPU time each photo
costs, bare and served (the server process's user + system time, from /proc), and how many
cores the service kept busy: with every core busy only less work per photo is faster; with
cores idle, the service is waiting (disk syncs, locks) and more overlap would be. The
uploaders run on the same cores (their CPU per photo is printed too): the served rate pays
for them, the bare one does not.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np

from streetwatch.datasets.synth.generate import generate_image
from streetwatch.inference.detector import Detector, DetectorConfig
from streetwatch.models.registry import ModelCard, Registry, default_registry_root
from streetwatch.service.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_rate(detector: Detector, jpegs: list[bytes]) -> float:
    """Photos per second of decode + detect, one at a time."""
    return bare_run(detector, jpegs)[0]


def bare_run(detector: Detector, jpegs: list[bytes]) -> tuple[float, float]:
    """Photos per second of decode + detect, one at a time, and CPU seconds per photo."""
    detector([np.asarray(cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR))])
    started, cpu = time.perf_counter(), time.process_time()
    for data in jpegs:  # decode included: the service decodes too
        detector([np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))])
    return (len(jpegs) / (time.perf_counter() - started),
            (time.process_time() - cpu) / len(jpegs))


def side_by_side_rate(path: Path, card: ModelCard, jpegs: list[bytes], workers: int) -> float:
    """Photos per second of ``workers`` one-thread-share detectors in parallel threads: the
    layout of the service's job threads, without the service."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    detectors = [Detector.open(path, card, DetectorConfig(threads=threads, spin=False))
                 for _ in range(workers)]
    for detector in detectors:
        bare_rate(detector, jpegs[:1])  # warm up
    runners = [threading.Thread(target=bare_rate, args=(detector, jpegs[k::workers]))
               for k, detector in enumerate(detectors)]
    started = time.perf_counter()
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    return len(jpegs) / (time.perf_counter() - started)


@dataclass
class Served:
    """One pass through ``streetwatch serve``."""

    rate: float  # photos per second
    latencies: list[float]  # each photo's, from upload to job done
    answered: list[float]  # each upload's, from sending to the 202
    cpu: float  # the server's CPU seconds in the pass
    client_cpu: float  # the uploaders' CPU seconds in the pass (this process, same cores)
    detector_s: float  # the mean wall time of its detector calls in the pass


@dataclass
class Server:
    """A running ``streetwatch serve`` and how to call it."""

    process: subprocess.Popen[bytes]
    base: str
    headers: dict[str, str]


@contextmanager
def serving(registry: Registry, queue_limit: int) -> Iterator[Server]:
    """``streetwatch serve`` on a temporary SQLite database with the promoted model."""
    with tempfile.TemporaryDirectory(prefix="sw-load-") as tmp:
        env = {**os.environ, "STREETWATCH_DATA_DIR": tmp,
               "STREETWATCH_REGISTRY": str(registry.root),
               "STREETWATCH_QUEUE_LIMIT": str(queue_limit)}
        sw = str(Path(sys.executable).with_name("streetwatch"))
        key = subprocess.run([sw, "keys", "create", "--role", "admin"], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        port = free_port()
        process = subprocess.Popen([sw, "serve", "--port", str(port)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = Server(process, f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"})
        try:
            with httpx.Client(base_url=server.base, headers=server.headers) as client:
                while True:
                    try:
                        client.get("/healthz")
                        break
                    except httpx.TransportError:
                        time.sleep(0.2)
                if client.get("/readyz").status_code != 200:
                    raise SystemExit(f"service not ready: {client.get('/readyz').json()}")
            yield server
        finally:
            process.terminate()
            process.wait(timeout=30)


def served_pass(server: Server, jpegs: list[bytes], uploaders: int,
                one_request: bool = False) -> Served:
    """Photos per second through the service with ``uploaders`` concurrent clients, each
    uploading one photo per request and waiting for its job with one long-polling request
    (with ``one_request``, the upload itself waits: ``?wait=60``), and what it cost (see
    :class:`Served`)."""
    latencies: list[float] = []
    answered: list[float] = []  # upload -> 202

    def uploader(share: list[bytes]) -> None:
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=120) as client:
            for data in share:
                sent = time.perf_counter()
                accepted = client.post("/v1/uploads/photos", files=[
                    ("files", ("p.jpg", data, "image/jpeg"))],
                    params={"wait": 60} if one_request else {}).json()
                answered.append(time.perf_counter() - sent)
                status, job = accepted["status"], accepted["job_id"]
                while status in ("queued", "running"):  # long polling: one request waits
                    status = client.get(f"/v1/jobs/{job}", params={"wait": 60}).json()[
                        "status"]
                latencies.append(time.perf_counter() - sent)

    with httpx.Client(base_url=server.base, headers=server.headers) as client:
        calls_before = detector_calls(client.get("/metrics").text)
        started, cpu = time.perf_counter(), cpu_seconds(server.process.pid)
        client_cpu = time.process_time()
        threads = [threading.Thread(target=uploader, args=(jpegs[k::uploaders],))
                   for k in range(uploaders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rate = len(jpegs) / (time.perf_counter() - started)
        cpu = cpu_seconds(server.process.pid) - cpu
        client_cpu = time.process_time() - client_cpu
        calls_after = detector_calls(client.get("/metrics").text)
    seconds, count = (a - b for a, b in zip(calls_after, calls_before, strict=True))
    return Served(rate, latencies, answered, cpu, client_cpu, seconds / max(1.0, count))


def detector_calls(exposition: str) -> tuple[float, float]:
    """Seconds spent in detector calls so far, and how many, from the service's Prometheus
    histogram."""
    values = {}
    for line in exposition.splitlines():
        name, _, value = line.partition(" ")
        if name in ("streetwatch_inference_seconds_sum", "streetwatch_inference_seconds_count"):
            values[name] = float(value)
    return (values["streetwatch_inference_seconds_sum"],
            values["streetwatch_inference_seconds_count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploaders", type=int, default=4)
    parser.add_argument("--photos", type=int, default=48, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    registry = Registry(Path(os.environ.get("STREETWATCH_REGISTRY", default_registry_root())))
    ref = registry.promoted()  # what the service serves
    assert ref, f"no model promoted in {registry.root}"
    card = registry.card(ref)
    settings = Settings.from_env()  # what the service will run, from the same environment
    model_file = registry.artefact_path(card, settings.model_kind)
    detector = Detector.open(model_file, card)
    workers = settings.workers
    cores = os.cpu_count() or 1
    print(f"model {ref} ({settings.model_kind}), {args.rounds} rounds of {args.photos} "
          f"photos 1280x720, "
          f"{args.uploaders} concurrent uploaders, {workers} job threads")
    # each pass has photos of its own: the same photos again would find their evidence
    # files written, and could join the cases stored before instead of making new ones
    rounds = [{one: photos(1000 + (2 * r + one + 1) * args.photos, args.photos)
               for one in (False, True)} for r in range(args.rounds)]
    modes = {"upload, then GET /v1/jobs/{id}?wait": False, "upload with ?wait": True}
    passes: dict[bool, list[Served]] = {False: [], True: []}
    ratios: dict[bool, list[float]] = {False: [], True: []}
    layouts: dict[bool, list[float]] = {False: [], True: []}
    bare_cpus = []
    print("  round: bare, side by side, served photos/s (two requests a photo, then one); "
          "served against bare")
    with serving(registry, queue_limit=args.photos + 1) as server:
        served_pass(server, photos(1000, 2), 2)  # loads the service's detectors
        for number, shares in enumerate(rounds, start=1):
            # bare (on both passes' photos) before and after the service's passes: on a
            # shared machine the load changes; the two client modes go first in turns
            jpegs = shares[False] + shares[True]
            bare_before, bare_cpu = bare_run(detector, jpegs)
            layout_before = side_by_side_rate(model_file, card, jpegs, workers)
            order = (False, True) if number % 2 else (True, False)
            done = {one: served_pass(server, shares[one], args.uploaders, one)
                    for one in order}
            bare = (bare_before + bare_rate(detector, jpegs)) / 2
            layout = (layout_before + side_by_side_rate(model_file, card, jpegs, workers)) / 2
            for one, run in done.items():
                passes[one].append(run)
                ratios[one].append(run.rate / bare)
                layouts[one].append(run.rate / layout)
            bare_cpus.append(bare_cpu)
            print(f"  {number}: {bare:.2f}, {layout:.2f}, {done[False].rate:.2f}, "
                  f"{done[True].rate:.2f}; {done[False].rate / bare:.2f}x, "
                  f"{done[True].rate / bare:.2f}x")
    print(f"  bare detector (decode + detect, one call at a time, every core) CPU per photo "
          f"{1000 * statistics.median(bare_cpus):.0f} ms")
    for label, one in modes.items():
        runs = passes[one]
        latencies = [t for run in runs for t in run.latencies]
        answered = [t for run in runs for t in run.answered]
        count = args.photos * len(runs)
        busy = statistics.median(run.cpu * run.rate / args.photos for run in runs)
        print(f"  {label}: against the bare detector median {statistics.median(ratios[one]):.2f}x "
              f"(rounds {min(ratios[one]):.2f}-{max(ratios[one]):.2f}x); against {workers} "
              f"bare detectors side by side (the service's layout) "
              f"{statistics.median(layouts[one]):.2f}x")
        wait = "" if one else (f"; of which upload -> 202: p50 {percentile(answered, 0.5):.3f} s,"
                               f" p95 {percentile(answered, 0.95):.3f} s")
        print(f"    latency upload -> job done: p50 {percentile(latencies, 0.5):.2f} s, "
              f"p95 {percentile(latencies, 0.95):.2f} s{wait}")
        print(f"    CPU per photo served {1000 * sum(run.cpu for run in runs) / count:.0f} ms; "
              f"the service kept {busy:.2f} of {cores} cores busy; the uploaders, on the same "
              f"cores, took {1000 * sum(run.client_cpu for run in runs) / count:.0f} ms a photo;"
              f" a detector call took "
              f"{1000 * statistics.median(run.detector_s for run in runs):.0f} ms")


def photos(seed: int, count: int) -> list[bytes]:
    """``count`` generated 1280x720 street photos as JPEG, CCTV and dashcam in turn."""
    images = [generate_image(seed + i, "dashcam" if i % 2 else "cctv", (1280, 720)).image
              for i in range(count)]
    return [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            for image in images]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
