"""tools.results --set: a loss option added to one method's recipe (how the DisCo --mse-weight 0.25 row of
docs/RESULTS.md was run); malformed items are refused; the experiment helpers parse their arguments."""
import pytest

from tools import results


@pytest.fixture
def recipes(monkeypatch):
    monkeypatch.setattr(results, "RECIPES", {k: dict(v) for k, v in results.RECIPES.items()})
    return results


def test_set_adds_a_loss_option_to_one_method_only(recipes):
    recipes.set_loss_option("disco.mse_weight=0.25")
    assert recipes.RECIPES["disco"]["loss_options"] == {"mse_weight": 0.25}
    assert recipes.RECIPES["disco"]["queue_size"] == 4096  # the rest of the recipe kept
    assert "loss_options" not in recipes.RECIPES["seed"]
    recipes.set_loss_option("disco.temperature=0.1")
    assert recipes.RECIPES["disco"]["loss_options"] == {"mse_weight": 0.25, "temperature": 0.1}


@pytest.mark.parametrize("item", ["disco.mse_weight", "nomethod.x=1", "disco=1", "disco.mse_weight=abc"])
def test_set_refuses_malformed_items(recipes, item):
    with pytest.raises(ValueError):
        recipes.set_loss_option(item)


def test_cli_says_what_is_wrong_with_set(recipes, capsys):
    code = results.main(["--data", "d", "--val", "v", "--teachers", "t", "--set", "bogus", "--list"])
    assert code == 2 and "METHOD.OPTION=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["tools.experiments.step_variants", "tools.experiments.fold_latency"])
def test_experiment_helpers_print_their_usage(module):
    import importlib

    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(module).main(["--help"])
    assert exit_.value.code == 0
