"""`tracesynth benchmark` end to end on real traces: the rows, the flat JSON, the leaderboard page, the
split written for other tools and scored back, a model fitted in its own process with its cost, and
one-line errors (exit 2) for bad input."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from tracesynth import read_trace
from tracesynth.benchmark import BenchmarkSpec, run_benchmark
from tracesynth.cli import main
from tracesynth.errors import UserError

from tsdata import shared

TINY_MODEL = {"attribute_num_units": 16, "attribute_num_layers": 1, "feature_num_units": 16,
              "critic_num_units": 16, "critic_num_layers": 1, "attr_critic_num_units": 16,
              "attr_critic_num_layers": 1}


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def baselines_only(tmp_path_factory):
    """caida-1k with the baselines only, the split written out, and the written train part scored back as
    another tool's output (a pure copier)."""
    folder = tmp_path_factory.mktemp("bench")
    split = folder / "split"
    first = run_benchmark(BenchmarkSpec(shared("caida/caida-1k.pcapng"), models=(), write_split=split))
    spec = BenchmarkSpec(shared("caida/caida-1k.pcapng"), models=(), scores=(("copier", split / "train.pcap"),))
    return first, run_benchmark(spec), split


def test_rows_and_flat_metrics(baselines_only):
    _, result, _ = baselines_only
    from tracesynth.benchmark.output import to_json

    data = to_json(result)
    assert list(data["rows"]) == ["real", "marginals", "copy", "copier"]
    for row in data["rows"].values():
        assert all(isinstance(v, (float, int)) or v is None for v in row.values())
        assert {"jsd.SA", "pairs.tv_mean", "auc.records", "privacy.mia_auc", "cost.fit_cpu_s"} <= set(row)
    assert data["rows"]["real"]["jsd.SA"] == pytest.approx(result.mean("real", "jsd.SA"))
    assert set(data["metrics"]["auc.records"]) == {"low", "high", "direction", "description"}
    json.dumps(data, allow_nan=False)


def test_split_files_reread_and_score_back_as_the_copy_they_are(baselines_only):
    first, result, split = baselines_only
    train, held = read_trace(split / "train.pcap").table, read_trace(split / "holdout.pcap").table
    sizes = first.seeds[0].sizes
    assert (len(train), len(held)) == (sizes["train_records"], sizes["holdout_records"])
    # the same seed gives the same split: the written train part is the `real` row of the second run
    assert result.mean("copier", "jsd.SA") == pytest.approx(result.mean("real", "jsd.SA"))
    assert result.mean("copier", "privacy.exact_copy") > 0.9 > 0.1 > result.mean("real", "privacy.exact_copy")


def test_marginals_caught_by_joint_metrics(baselines_only):
    _, result, _ = baselines_only
    assert result.mean("marginals", "jsd.mean") < 1.2 * result.mean("real", "jsd.mean")
    assert result.mean("marginals", "pairs.tv_mean") > result.mean("real", "pairs.tv_mean")
    assert result.mean("marginals", "auc.flows") > result.mean("real", "auc.flows") + 0.1


def test_cli_writes_json_and_leaderboard(tmp_path, capsys):
    code, out, err = run_cli(["benchmark", str(shared("ugr16/ugr16-1k.csv")), "--models", "none", "--seeds", "2",
                              "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert data["seeds"] == 2 and len(data["per_seed"]) == 2
    assert data["spread"]["marginals"]["pairs.tv_mean"] is not None          # std over two seeds
    page = (tmp_path / "b" / "leaderboard.html").read_text()
    assert "Benchmark leaderboard" in page and "pairs.tv_mean" in page and "<script" not in page
    assert "pairs.tv_mean" in out and "real = the floor" in out.replace("\n", " ")


@pytest.mark.slow
def test_model_row_fits_in_its_own_process_with_cost(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"preset": "netflow", "model": TINY_MODEL,
                                      "training": {"checkpoint_selection": False}}))
    result = run_benchmark(BenchmarkSpec(shared("ugr16/ugr16-1k.csv"), models=("doppelganger",), epochs=1,
                                         config=config, workers=1))
    assert result.row_names == ["real", "marginals", "copy", "doppelganger"]
    for name in ("cost.fit_cpu_s", "cost.fit_wall_s", "cost.peak_rss_mb", "cost.records_per_s"):
        assert math.isfinite(result.mean("doppelganger", name)) and result.mean("doppelganger", name) > 0
    assert 0.0 <= result.mean("doppelganger", "auc.records") <= 1.0


def test_unknown_model_is_one_line_exit_2(capsys):
    code, _, err = run_cli(["benchmark", str(shared("caida/caida-1k.pcapng")), "--models", "gpt"], capsys)
    assert code == 2 and "unknown model 'gpt'" in err and err.count("\n") == 1


def test_too_few_flows_to_split_exit_2(capsys):
    code, _, err = run_cli(["benchmark", str(shared("ndpi/rdp.pcap")), "--models", "none"], capsys)
    assert code == 2 and "flow(s)" in err and err.count("\n") == 1


def test_score_file_of_the_other_kind_exit_2(capsys):
    code, _, err = run_cli(["benchmark", str(shared("caida/caida-1k.pcapng")), "--models", "none",
                            "--score", f"nf={shared('ugr16/ugr16-1k.csv')}"], capsys)
    assert code == 2 and "holds flows but the benchmarked trace holds packets" in err and err.count("\n") == 1


def test_bad_score_syntax_and_taken_names():
    from tracesynth.cli.bench_cmds import _scores

    with pytest.raises(UserError, match="NAME=SYNTH_FILE"):
        _scores(["synthetic.csv"])
    with pytest.raises(UserError, match="'copy' is taken"):
        BenchmarkSpec(shared("caida/caida-1k.pcapng"), models=(), scores=(("copy", shared("caida/caida-1k.pcapng")),))
