"""The repository's shape: commands at the root, the library in packages that are its layers, no
import running up a layer, no eager package imports, and defaults that resolve for every registered
data set x method x setting (so a new registry entry is usable the moment it exists)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from conftest import REPO

import opts
from data import list_datasets
from engine import hparams
from methods import list_methods

# Low to high: a package may import its own layer and the layers below it, never a higher one.
LAYERS = {"core": 0, "data": 1, "models": 1, "methods": 2, "evaluation": 3, "engine": 4, "reporting": 5, "stages": 6}
ROOT_MODULES = {p.stem for p in REPO.glob("*.py")}


def _imports(path) -> set[str]:
    """Top-level names of every module `path` imports (at any depth of the file)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", list(LAYERS))
def test_no_import_runs_up_a_layer(package):
    for f in sorted((REPO / package).glob("*.py")):
        for name in _imports(f):
            assert name not in ROOT_MODULES, f"{f.relative_to(REPO)} imports the root module {name}"
            if name in LAYERS:
                assert LAYERS[name] <= LAYERS[package], f"{f.relative_to(REPO)} imports {name}, a higher layer"


def test_root_holds_commands_only():
    """Every .py at the root is something a user runs (opts.py: the parser they all share)."""
    for f in sorted(REPO.glob("*.py")):
        if f.name != "opts.py":
            assert 'if __name__ == "__main__":' in f.read_text(), f"{f.name} is not a command"


def test_package_inits_import_nothing_eagerly():
    """Importing a package loads none of its own modules (registries load theirs on first lookup)."""
    code = ("import sys; import " + ", ".join(LAYERS) + "; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in " + repr(set(LAYERS)) + " and '.' in m "
            "and not m.startswith('core.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_no_citation_of_documents_users_do_not_have():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        if name.endswith((".py", ".md", ".sh", ".txt")):
            text = (REPO / name).read_text()
            assert not any(c in text for c in CITED), name


# the project's design card and the folder beside the checkout, spelled so that this file cites neither
CITED = ("DES" + "IGN", "../" + "shared")


@pytest.mark.parametrize("setting", ["fc", "partial", "full"])
@pytest.mark.parametrize("dataset", list_datasets())
def test_defaults_resolve_for_every_dataset_method_setting(dataset, setting):
    for method in list_methods():
        # (the full setting's default surrogates are another data set's files: chosen here, none are needed)
        args = opts.parse_args(["--dataset", dataset, "--method", method, "--setting", setting,
                                "--surrogate_dataset", "sample_images"], stage="main")
        for k in ("lr", "epochs", "bsize", "momentum", "wd", "scheduler", "temperature", "img_size", "hr_samples"):
            assert getattr(args, k) is not None, (dataset, method, setting, k)
    for stage in ("train", "oracle", "embed", "baseline"):
        args = opts.parse_args(["--dataset", dataset], stage=stage)
        assert None not in (args.epochs, args.bsize, args.lr, args.img_size, args.stem), (dataset, stage)


def test_a_method_without_a_defaults_entry_takes_the_settings(monkeypatch):
    assert "NEW" not in hparams.METHOD_DEFAULTS
    d = hparams.unlearn_defaults("NEW", "fc", "digits")
    assert d["lr"] == hparams.UNLEARN_SETTING_DEFAULTS["fc"]["lr"]
