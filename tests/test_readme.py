"""The README's commands name things that exist: recipes, models, datasets, CLI commands."""
import re
from pathlib import Path

from inflor.cli import build_parser
from inflor.data import list_datasets
from inflor.models import list_models
from inflor.train.config import list_recipes

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_recipe_in_the_readme_ships():
    named = set(re.findall(r"-c ([a-z0-9_]+)", README)) - {"RECIPE"}
    assert named, "the README shows no recipe command"
    assert named <= set(list_recipes())


def test_models_and_datasets_listed_exist():
    section = README[README.index("Models (`inflor.models"):README.index("## Speed and memory")]
    names = set(re.findall(r"`([a-z0-9_]+)`", section))
    assert {"resnet19", "tinyconv", "cifarnet"} <= names
    assert names - {"digits", "npz", "cifar10", "cifar100", "imagenet", "cifar10_dvs", "create_model"} <= set(list_models())
    assert {"digits", "npz", "cifar10", "cifar100", "imagenet", "cifar10_dvs"} <= set(list_datasets())


def test_cli_commands_in_the_readme_exist():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for cmd in re.findall(r"\| `inflor (\w+)", README):
        assert cmd in sub.choices, cmd


def test_readme_lists_the_command_of_every_recipe_and_is_current():
    from inflor.train import recipes_doc

    assert recipes_doc.with_readme_commands(README) == README, \
        "README.md's recipe commands are out of date: run python -m inflor.config.docs"
    assert set(re.findall(r"inflor train -c ([a-z0-9_]+)", README)) == set(list_recipes())
