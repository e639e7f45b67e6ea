"""The `evaluate` and `report` commands end to end on real captures, and the report in headless Chromium."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tracesynth.cli import main
from tracesynth.io import read_trace, write_trace

CHROMIUM = "/usr/bin/chromium"
PAPER_KEYS = {"packets": {"SA", "DA", "SP", "DP", "PR", "PS", "PAT", "FS"},
              "flows": {"SA", "DA", "SP", "DP", "PR", "TS", "TD", "PKT", "BYT"}}


@pytest.fixture
def synth_pcap(tmp_path, caida_1k, perturb) -> Path:
    return write_trace(perturb(read_trace(caida_1k).table), tmp_path / "synth.pcap")


def test_evaluate_pcap_vs_pcap_writes_every_number(tmp_path, caida_1k, synth_pcap, capsys):
    out = tmp_path / "scores.json"
    assert main(["evaluate", str(caida_1k), str(synth_pcap), "--json", str(out), "--no-downstream"]) == 0
    result = json.loads(out.read_text())
    assert set(result["netshare"]) == PAPER_KEYS["packets"]
    assert result["netshare"]["SA"] == 0 and result["netshare"]["PS"] > 0
    assert "downstream" not in result and result["rows"] == {"real": 1000, "synthetic": 1000}
    printed = capsys.readouterr().out
    assert "NetShare metrics: SYNTH vs REAL" in printed
    # issue 12 item 7: every printed score says what it was compared with
    assert "compared with" in printed and "time split of REAL" in printed
    assert result["compared_with"]["privacy"] == result["privacy"]["split"]


def test_evaluate_flow_csv_with_baseline(tmp_path, ugr16_1k, perturb):
    synth = write_trace(perturb(read_trace(ugr16_1k).table), tmp_path / "synth.csv")
    out = tmp_path / "scores.json"
    assert main(["evaluate", str(ugr16_1k), str(synth), "--json", str(out), "--baseline"]) == 0
    result = json.loads(out.read_text())
    assert set(result["netshare"]) == PAPER_KEYS["flows"]
    assert result["baseline"]["fidelity"]["avg_jsd"] == pytest.approx(0, abs=1e-12)
    assert result["baseline"]["summary"]["records_auc"] > 0.9  # marginals kept, rows easy to tell apart
    assert result["baseline"]["summary"]["mi_abs_diff"] > result["summary"]["mi_abs_diff"]
    assert set(result["downstream"]) == {"traffic_type", "heavy_hitters", "anomaly"}


def test_packets_against_flow_records_is_a_user_error(caida_1k, ugr16_1k, capsys):
    assert main(["evaluate", str(caida_1k), str(ugr16_1k), "--no-downstream"]) == 2
    assert "flow records" in capsys.readouterr().err


def test_report_renders_in_chromium_with_every_image(tmp_path, caida_1k, synth_pcap):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian chromium not installed (apt-get install -y chromium; `make browser`)")
    meta = tmp_path / "run.json"
    meta.write_text(json.dumps({"epsilon": 8.0, "delta": 1e-5}))
    html = tmp_path / "report.html"
    assert main(["report", str(caida_1k), str(synth_pcap), "--out", str(html), "--baseline", "--meta", str(meta)]) == 0
    text = html.read_text()
    assert "<img" in text and "http://" not in text and "https://" not in text  # self-contained
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(html.as_uri())
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        headings = page.locator("h2").all_inner_texts()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert len(images) >= 5 and all(done and width > 100 for done, width in images)
    for section in ("Verdict", "Run", "Metrics", "Downstream tasks"):
        assert section in headings
    assert (tmp_path / "report.png").stat().st_size > 50_000
