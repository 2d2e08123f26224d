"""tools.results --set: a loss option added to one method's recipe (how the DisCo --mse-weight 0.25 row of
docs/RESULTS.md was run); malformed items are refused; the experiment helpers parse their arguments."""
import pytest

from tools import results


@pytest.fixture
def recipes(monkeypatch):
    monkeypatch.setattr(results, "RECIPES", {k: dict(v) for k, v in results.RECIPES.items()})
    return results


def test_set_adds_a_loss_option_to_one_method_only(recipes):
    assert recipes.RECIPES["disco"]["loss_options"] == {"mse_weight": 0.25}  # the official per-sample balance
    recipes.set_loss_option("disco.mse_weight=0.5")
    assert recipes.RECIPES["disco"]["loss_options"] == {"mse_weight": 0.5}
    assert recipes.RECIPES["disco"]["queue_size"] == 4096  # the rest of the recipe kept
    assert "loss_options" not in recipes.RECIPES["seed"]
    recipes.set_loss_option("disco.temperature=0.1")
    assert recipes.RECIPES["disco"]["loss_options"] == {"mse_weight": 0.5, "temperature": 0.1}


@pytest.mark.parametrize("item", ["disco.mse_weight", "nomethod.x=1", "disco=1", "disco.mse_weight=abc"])
def test_set_refuses_malformed_items(recipes, item):
    with pytest.raises(ValueError):
        recipes.set_loss_option(item)


def test_cli_says_what_is_wrong_with_set(recipes, capsys):
    code = results.main(["--data", "d", "--val", "v", "--teachers", "t", "--set", "bogus", "--list"])
    assert code == 2 and "METHOD.OPTION=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["tools.experiments.step_variants", "tools.experiments.fold_latency",
                                    "tools.experiments.openvino_static"])
def test_experiment_helpers_print_their_usage(module):
    import importlib

    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(module).main(["--help"])
    assert exit_.value.code == 0


def test_recipe_sets_a_config_field_of_one_method(recipes):
    recipes.set_recipe_field("compress.ema_momentum=0")
    recipes.set_recipe_field("compress.queue_size=8192")
    assert recipes.RECIPES["compress"]["ema_momentum"] == 0.0 and recipes.RECIPES["compress"]["queue_size"] == 8192
    assert recipes.RECIPES["disco"]["ema_momentum"] == 0.99
    with pytest.raises(ValueError, match="METHOD.FIELD=VALUE"):
        recipes.set_recipe_field("compress=0")


def test_a_cached_row_records_the_cache_in_its_budget(recipes, tmp_path):
    import argparse

    args = argparse.Namespace(epochs=5, batch_size=128, lr=0.1, max_steps=None, train_limit=100, cache_views=4,
                              out=str(tmp_path))
    done = tmp_path / "mobilenetv3_large_100-seed-cifar_resnet56" / "row.json"
    done.parent.mkdir()
    done.write_text('{"budget": {"epochs": 5, "batch_size": 128, "lr": 0.1, "max_steps": null, "train_limit": 100}}')
    with pytest.raises(results.EdgeDistillError, match="use another --out for another budget"):
        results.run_row(results.Row("cifar_resnet56", "mobilenetv3_large_100", "seed"), args)
