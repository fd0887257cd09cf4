"""One parser: documented flags, defaults from one table, bad values refused at parse time."""

from __future__ import annotations

import pytest
from conftest import run_stage

import opts

SEED_FLAGS = ("run_name dataset mode cuda save_model save_df run_original run_unlearn run_rt_model num_workers method "
              "model bsize wd momentum lr epochs scheduler temperature lambda_1 lambda_2 delta gamma1 gamma2 patience "
              "samples_per_class n_model noise_type forget_mode num_forget_classes load_unlearned_model push_results "
              "root data_root seed forget_class img_size pretrained").split()


def test_every_flag_is_documented_and_seed_flags_exist():
    p = opts.get_parser()
    dests = {a.dest: a for a in p._actions}
    for f in SEED_FLAGS:
        assert f in dests, f
    for a in p._actions:
        assert a.help, a.dest


def parse_error(capsys, argv, stage="main") -> str:
    with pytest.raises(SystemExit) as e:
        opts.parse_args(argv, stage=stage)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:"), err
    return err


@pytest.mark.parametrize("argv,needle", [
    (["--dataset", "mnist"], "choose from 'digits', 'cifar10', 'cifar100', 'TinyImageNet'"),
    (["--model", "vgg"], "'resnet18', 'resnet50', 'ViT', 'swint'"),
    (["--method", "XYZ"], "'FT', 'NG', 'NGFTW', 'RL', 'SCAR', 'BS', 'BE', 'SCRUB', 'DELETE'"),
    (["--forget_class", "10"], "--forget_class: 10 out of range; digits has classes 0..9"),
    (["--dataset", "cifar100", "--forget_class", "100"], "0..99"),
    (["--num_forget_classes", "10", "--forget_mode", "multi"], "1..9"),
    (["--samples_per_class", "0"], "--samples_per_class: 0 must be >= 1"),
    (["--bsize", "-4"], "--bsize: -4 must be >= 1"),
    (["--epochs", "0"], "--epochs"),
    (["--lr", "0"], "--lr"),
    (["--scheduler", "sometimes"], "valid: cosine, none, or integer milestones"),
    (["--method", "SCRUB", "--hp", "beta=1"], "valid: alpha, gamma, msteps"),
    (["--setting", "full", "--source", "synthetic"], "synthetic embeddings exist for the fc and partial"),
])
def test_bad_values_fail_at_parse_time(capsys, argv, needle):
    assert needle in parse_error(capsys, argv)


def test_defaults_come_from_the_table():
    a = opts.parse_args(["--dataset", "cifar10"], stage="train")
    assert (a.lr, a.bsize, a.momentum, a.wd, a.label_smoothing, a.stem, a.img_size) == (0.1, 256, 0.0, 5e-5, 0.4,
                                                                                         "imagenet", 32)
    assert opts.parse_args(["--dataset", "TinyImageNet"], stage="train").scheduler == list(range(25, 300, 25))
    assert opts.parse_args(["--dataset", "TinyImageNet", "--recipe", "seedB"], stage="train").scheduler == [25]
    assert opts.parse_args(["--dataset", "cifar100", "--model", "ViT"], stage="train").img_size == 224
    assert opts.parse_args(["--model", "swint"], stage="train").img_size == 32
    m = opts.parse_args(["--dataset", "cifar10", "--method", "SCAR", "--setting", "full", "--surrogate_dataset", "noise"])
    assert (m.lr, m.epochs, m.bsize) == (5e-4, 30, 1024)
    assert (opts.parse_args(["--dataset", "cifar10", "--method", "NG", "--setting", "full"]).lr) == 0.01
    # digits overrides, last in line: every method in full, then SCAR's own; a flag still wins
    d = opts.parse_args(["--dataset", "digits", "--method", "NG", "--setting", "full"])
    assert (d.lr, d.epochs, d.bsize) == (3e-3, 5, 256)
    d = opts.parse_args(["--dataset", "digits", "--method", "SCAR", "--setting", "full", "--epochs", "2"])
    assert (d.lr, d.epochs, d.bsize) == (1e-4, 2, 128)
    assert opts.parse_args(["--dataset", "digits", "--method", "SCRUB", "--setting", "partial"]).method_hp["msteps"] == 5
    assert opts.parse_args(["--dataset", "digits", "--method", "SCRUB", "--setting", "full"]).method_hp["msteps"] == 5
    assert opts.parse_args(["--dataset", "cifar10", "--method", "SCRUB", "--setting", "full"]).method_hp["msteps"] == -1
    assert opts.parse_args(["--method", "DELETE"]).scheduler == ["cosine"]
    s = opts.parse_args(["--method", "SCRUB", "--hp", "msteps=3", "--lr", "0.5"])
    assert s.method_hp == {"alpha": 1.0, "gamma": 1.0, "msteps": 3} and s.lr == 0.5 and s.temperature == 2.0
    assert opts.parse_args(["--scheduler", "25", "40"]).scheduler == [25, 40]


def test_help_runs_for_a_stage():
    out = run_stage("main.py", "--help").stdout
    for flag in ("--setting", "--source", "--select", "--samples_per_class", "--hp", "--root"):
        assert flag in out
