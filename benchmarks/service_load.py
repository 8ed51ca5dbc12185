"""Service throughput under concurrent uploads, against the bare detector on the same images.

    .venv/bin/python benchmarks/service_load.py [--uploaders 4] [--photos 48]

Starts ``streetwatch serve`` on a temporary SQLite database with the promoted model, has K
threads upload generated 1280x720 street photos one per request (each then waits for its
job with one long-polling request), and waits for every job. Prints photos per second end
to end (upload, store, queue, detect, write cases) against the bare ``Detector`` on the same
decoded images, measured in the same run (the mean of one pass before and one after the
service's), and the p50/p95 latency from upload to job done. The bare detector is one
call at a time with the default settings (every core); the service runs one detector per
job thread (``STREETWATCH_WORKERS``), so it is also compared with that many bare
detectors side by side. Beside the rates it prints the CPU time each photo costs, bare and
served (the server process's user + system time, from /proc), and how many cores the
service kept busy: with every core busy only less work per photo is faster; with cores
idle, the service is waiting (disk syncs, locks) and more overlap would be.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
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
    """One run through ``streetwatch serve``."""

    rate: float  # photos per second
    latencies: list[float]  # each photo's, from upload to job done
    answered: list[float]  # each upload's, from sending to the 202
    cpu: float  # the server's CPU seconds in the run
    detector_s: float  # the mean wall time of its detector calls


def served_rate(registry: Registry, jpegs: list[bytes], uploaders: int) -> Served:
    """Photos per second through ``streetwatch serve`` with ``uploaders`` concurrent
    clients, and what it cost (see :class:`Served`)."""
    with tempfile.TemporaryDirectory(prefix="sw-load-") as tmp:
        env = {**os.environ, "STREETWATCH_DATA_DIR": tmp,
               "STREETWATCH_REGISTRY": str(registry.root),
               "STREETWATCH_QUEUE_LIMIT": str(len(jpegs) + 1)}
        sw = str(Path(sys.executable).with_name("streetwatch"))
        key = subprocess.run([sw, "keys", "create", "--role", "admin"], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        port = free_port()
        server = subprocess.Popen([sw, "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
        latencies: list[float] = []
        answered: list[float] = []  # upload -> 202
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
                while True:
                    try:
                        client.get("/healthz")
                        break
                    except httpx.TransportError:
                        time.sleep(0.2)
                if client.get("/readyz").status_code != 200:
                    raise SystemExit(f"service not ready: {client.get('/readyz').json()}")

            def uploader(share: list[bytes]) -> None:
                with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
                    for data in share:
                        sent = time.perf_counter()
                        job = client.post("/v1/uploads/photos", files=[
                            ("files", ("p.jpg", data, "image/jpeg"))]).json()["job_id"]
                        answered.append(time.perf_counter() - sent)
                        while client.get(f"/v1/jobs/{job}", params={"wait": 60}).json()[
                                "status"] in ("queued", "running"):
                            pass  # long polling: one request waits for the job to end
                        latencies.append(time.perf_counter() - sent)

            started, cpu = time.perf_counter(), cpu_seconds(server.pid)
            threads = [threading.Thread(target=uploader, args=(jpegs[k::uploaders],))
                       for k in range(uploaders)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            served = len(jpegs) / (time.perf_counter() - started)
            cpu = cpu_seconds(server.pid) - cpu
            with httpx.Client(base_url=base, headers=headers) as client:
                detector_s = detector_seconds(client.get("/metrics").text)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return Served(served, latencies, answered, cpu, detector_s)


def detector_seconds(exposition: str) -> float:
    """Mean seconds of a detector call in the service, from its Prometheus histogram."""
    values = {}
    for line in exposition.splitlines():
        name, _, value = line.partition(" ")
        if name in ("streetwatch_inference_seconds_sum", "streetwatch_inference_seconds_count"):
            values[name] = float(value)
    return values["streetwatch_inference_seconds_sum"] / max(
        1.0, values["streetwatch_inference_seconds_count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploaders", type=int, default=4)
    parser.add_argument("--photos", type=int, default=48)
    args = parser.parse_args()

    registry = Registry(Path(os.environ.get("STREETWATCH_REGISTRY", default_registry_root())))
    ref = registry.promoted()  # what the service serves
    assert ref, f"no model promoted in {registry.root}"
    card = registry.card(ref)
    images = [generate_image(1000 + i, "dashcam" if i % 2 else "cctv", (1280, 720)).image
              for i in range(args.photos)]
    jpegs = [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
             for image in images]

    detector = Detector.open(registry.artefact_path(card, "onnx"), card)
    workers = Settings.from_env().workers  # what the service will run, from the same env
    bare_before, bare_cpu = bare_run(detector, jpegs)
    layout_before = side_by_side_rate(registry.artefact_path(card, "onnx"), card, jpegs, workers)

    run = served_rate(registry, jpegs, args.uploaders)
    served, served_cpu = run.rate, run.cpu
    # measured before and after the service's run: on a shared machine the load changes
    bare_after = bare_rate(detector, jpegs)
    layout_after = side_by_side_rate(registry.artefact_path(card, "onnx"), card, jpegs, workers)
    print(f"model {ref}, {args.photos} photos 1280x720, {args.uploaders} concurrent uploaders, "
          f"{workers} job threads")
    print(f"  bare before {bare_before:.2f}, after {bare_after:.2f} photos/s; {workers} "
          f"detectors side by side before {layout_before:.2f}, after {layout_after:.2f}")
    report((bare_before + bare_after) / 2, served, run.latencies)
    print(f"  of which upload -> 202: p50 {percentile(run.answered, 0.5):.3f} s, "
          f"p95 {percentile(run.answered, 0.95):.3f} s")
    layout = (layout_before + layout_after) / 2
    print(f"  against {workers} bare detectors side by side (the service's layout, "
          f"{layout:.2f} photos/s): {served / layout:.2f}x")
    cores = os.cpu_count() or 1
    busy = served_cpu * served / len(jpegs)  # CPU seconds per wall second
    print(f"  CPU per photo: bare {1000 * bare_cpu:.0f} ms, served "
          f"{1000 * served_cpu / len(jpegs):.0f} ms; the service kept {busy:.2f} of "
          f"{cores} cores busy")
    print(f"  a detector call in the service took {1000 * run.detector_s:.0f} ms "
          f"({workers} one-thread detectors side by side)")


def report(bare: float, served: float, latencies: list[float]) -> None:
    print(f"  bare detector (decode + detect): {bare:.2f} photos/s")
    print(f"  service end to end:              {served:.2f} photos/s = {served / bare:.2f}x bare")
    print(f"  latency upload -> job done: p50 {percentile(latencies, 0.5):.2f} s, "
          f"p95 {percentile(latencies, 0.95):.2f} s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
