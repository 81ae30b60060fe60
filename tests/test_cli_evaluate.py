import json

from shelfwise.cli import main

KEYS = {"dataset", "protocol", "model", "metrics", "users", "fit_seconds", "config"}


def test_evaluate_an_ingested_folder_under_both_protocols(tmp_path, shop, shop_dataset, capsys):
    shop_dataset.save(tmp_path / "shop")
    for protocol, k in (("p1", 10), ("p2", 20)):
        output = tmp_path / f"{protocol}.json"
        code = main(
            [
                "evaluate",
                "--data",
                str(tmp_path / "shop"),
                "--protocol",
                protocol,
                "--models",
                "popularity,ease",
                "--no-tune",
                "--output",
                str(output),
                "--quiet",
            ]
        )
        assert code == 0
        records = json.loads(output.read_text())
        assert [r["model"] for r in records] == ["popularity", "ease"]
        assert all(set(r) == KEYS for r in records)
        assert f"ndcg@{k}" in records[0]["metrics"] and f"cold_recall@{k}" in records[0]["metrics"]
        assert records[1]["metrics"][f"ndcg@{k}"] > records[0]["metrics"][f"ndcg@{k}"]
    assert "popularity" in capsys.readouterr().out


def test_evaluate_with_tuning_picks_from_the_grid(tmp_path, shop_dataset):
    shop_dataset.save(tmp_path / "shop")
    output = tmp_path / "tuned.json"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(tmp_path / "shop"),
                "--protocol",
                "p1",
                "--models",
                "ease",
                "--output",
                str(output),
                "--quiet",
            ]
        )
        == 0
    )
    from shelfwise.models import EASE

    chosen = json.loads(output.read_text())[0]["config"]
    assert chosen in [dict(EASE().get_params(), **grid) for grid in EASE.tuning_grid]


def test_evaluate_rejects_unknown_models_and_protocols(tmp_path, shop_dataset, capsys):
    shop_dataset.save(tmp_path / "shop")
    assert main(["evaluate", "--data", str(tmp_path / "shop"), "--protocol", "p1", "--models", "magic"]) == 2
    assert "valid models are" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path / "shop"), "--protocol", "p9", "--models", "ease"]) == 2
    assert "valid protocols are" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path / "nowhere"), "--protocol", "p1"]) == 2
    assert "No such data set folder" in capsys.readouterr().err


def test_demo_shows_the_flagship_served_and_the_command_that_serves_it(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo", "--items", "300", "--users", "200", "--budget", "10", "--out", str(out_dir)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "shelfwise (sequential)" in out and "EASE (baseline)" in out
    assert "after one purchase" in out and "no refit" in out
    assert "posted a new item with text only" in out
    command = f"shelfwise serve --model {out_dir / 'model'} --store sqlite:///{out_dir / 'shop.db'}"
    assert command in out
    assert (out_dir / "model" / "serving" / "manifest.json").is_file()


def test_evaluate_help_names_the_registered_models(capsys):
    from shelfwise.cli.options import MODEL_NAMES
    from shelfwise.models import model_names

    assert sorted(MODEL_NAMES.split(", ")) == sorted(model_names())
    assert main(["evaluate", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert MODEL_NAMES in shown


def test_train_then_recommend(tmp_path, shop_dataset, capsys):
    shop_dataset.save(tmp_path / "shop")
    out = tmp_path / "model"

    def train(param: str, folder) -> int:
        data = str(tmp_path / "shop")
        return main(["train", "--data", data, "--model", "ease", "--param", param, "--out", str(folder)])

    assert train("regularization=100", out) == 0
    summary = json.loads((out / "train.json").read_text())
    assert summary["params"] == {"regularization": 100} and summary["fit_seconds"] >= 0
    user = shop_dataset.user_ids[0]
    capsys.readouterr()
    assert main(["recommend", user, "--model", str(out), "-k", "5"]) == 0
    out_text = capsys.readouterr().out
    assert f"top 5 for shopper {user}" in out_text and "SKU-" in out_text
    assert main(["recommend", "nobody", "--model", str(out)]) == 2
    assert "Unknown user id(s): 'nobody'" in capsys.readouterr().err
    assert train("lambda=1", tmp_path / "bad") == 2
    assert "valid parameters are" in capsys.readouterr().err


def test_train_shows_each_epoch_and_writes_a_summary_with_the_curve(tmp_path, shop_dataset, capsys):
    shop_dataset.save(tmp_path / "shop")
    out = tmp_path / "mf"
    arguments = ["train", "--data", str(tmp_path / "shop"), "--model", "mf", "--param", "epochs=3"]
    assert main([*arguments, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.replace("\n", "")  # rich wraps long paths at the terminal's width
    assert "mf: fit phase" in printed and "loss " in printed and "train.html" in printed
    summary = json.loads((out / "train.json").read_text())
    (phase,) = summary["training"]["phases"]
    assert [row["epoch"] for row in phase["epochs"]] == [1, 2, 3]
    losses = [row["loss"] for row in phase["epochs"]]
    assert losses[-1] < losses[0]  # it learns
    page = (out / "train.html").read_text()
    assert '<figure class="plot" data-plot="training"' in page and page.count("<svg") == 1
    assert "fit phase 3 epochs" in page  # each phase's epochs (and, where the model says, why it stopped)
    assert main(["train", "--data", str(tmp_path / "shop"), "--model", "ease", "--out", str(tmp_path / "ease")]) == 0
    assert "no curve" in (tmp_path / "ease" / "train.html").read_text()  # closed form: says so, no empty plot


def test_evaluate_writes_a_self_contained_html_report(tmp_path, shop_dataset):
    import re

    shop_dataset.save(tmp_path / "shop")
    report = tmp_path / "report.html"
    output = tmp_path / "records.json"
    arguments = ["evaluate", "--data", str(tmp_path / "shop"), "--protocol", "p1", "--models", "popularity,ease"]
    code = main([*arguments, "--no-tune", "--quiet", "--report", str(report), "--output", str(output)])
    assert code == 0
    page = report.read_text()
    plots = re.findall(r'<figure class="plot" data-plot="([a-z-]+)"', page)
    assert plots == ["metric", "ndcg-at-k", "slices", "popularity"]
    assert page.count("<svg") == 4
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # nothing fetched from elsewhere
    records = json.loads(output.read_text())
    assert all(set(r) == KEYS for r in records)  # the JSON records keep their keys
    for record in records:
        assert f"<td>{record['metrics']['ndcg@10']:.4f}</td>" in page


def test_analysis_curve_agrees_with_the_metric(shop_dataset):
    from shelfwise.evaluation.runner import evaluate

    (record,) = evaluate(shop_dataset, "p1", ["ease"], tuned=False, include_analysis=True)
    analysis = record["analysis"]
    assert abs(analysis["ndcg_at"]["10"] - record["metrics"]["ndcg@10"]) < 1e-6
    values = [analysis["ndcg_at"][k] for k in ("1", "5", "10", "20", "50")]
    assert all(0 <= v <= 1 for v in values)
    assert 0 < analysis["coverage"] <= 1 and 0 < analysis["popularity_percentile"] <= 1
    assert set(analysis["slices"]) == {"warm users", "cold users"}


def test_evaluate_takes_fixed_parameters_per_model_in_tuning_and_the_final_fit(tmp_path, shop_dataset, capsys):
    shop_dataset.save(tmp_path / "shop")
    output = tmp_path / "fixed.json"
    base = ["evaluate", "--data", str(tmp_path / "shop"), "--protocol", "p1", "--output", str(output)]
    assert main([*base, "--models", "itemknn,ease", "--param", "itemknn.shrink=5,ease.regularization=12"]) == 0
    records = {r["model"]: r for r in json.loads(output.read_text())}
    assert records["itemknn"]["config"]["shrink"] == 5 and records["ease"]["config"]["regularization"] == 12
    tried = [line for line in capsys.readouterr().err.splitlines() if line.startswith("itemknn: tuning")]
    assert tried and all("'shrink': 5" in line for line in tried)
    assert len(tried) == len({line.split("→")[0] for line in tried}) == 4  # six grid points, four distinct
    for bad, said in (
        (["--models", "ease", "--param", "ease.lambda=3"], "no parameter(s) ['lambda']"),
        (["--models", "ease", "--param", "als.factors=3"], "'als' is not among the models run"),
        (["--models", "ease", "--param", "regularization=3"], "MODEL.NAME=VALUE"),
        (["--models", "ease", "--param", "ease.regularization=-3"], "must be a float in"),
    ):
        assert main([*base, *bad]) == 2
        assert said in capsys.readouterr().err.replace("\n", " ")


def test_each_record_is_written_when_its_model_finishes_and_ctrl_c_keeps_them(tmp_path, shop_dataset, monkeypatch):
    from shelfwise.models import EASE

    shop_dataset.save(tmp_path / "shop")
    output = tmp_path / "partial.json"

    def interrupted(self, dataset, *, progress):
        assert [r["model"] for r in json.loads(output.read_text())] == ["popularity"]  # on disk already
        raise KeyboardInterrupt

    monkeypatch.setattr(EASE, "_fit", interrupted)
    args = ["--protocol", "p1", "--models", "popularity,ease", "--no-tune", "--output", str(output), "--quiet"]
    assert main(["evaluate", "--data", str(tmp_path / "shop"), *args]) == 130
    assert [r["model"] for r in json.loads(output.read_text())] == ["popularity"]
