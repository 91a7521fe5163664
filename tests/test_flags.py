"""The declared flag mapping: every config field has its flag, and a config written as flags parses back to itself."""

from __future__ import annotations

import shlex
from dataclasses import fields

import pytest

from covid_core.cards.classifier import reproduce_command
from covid_core.cards.dae import dae_reproduce_command
from covid_core.cli import build_parser
from covid_core.denoise.training import DAE_FLAGS, DAE_RUN_FLAGS, DAETrainConfig
from covid_core.flags import config_argv, config_values, help_for
from covid_core.training import RUN_FLAGS, TRAIN_FLAGS, TrainConfig


def _declared(flags) -> set[str]:
    return {name for f in flags for name in f.fields}


def test_every_training_setting_has_exactly_one_flag():
    assert _declared(RUN_FLAGS + TRAIN_FLAGS) == {f.name for f in fields(TrainConfig)}
    assert len(RUN_FLAGS + TRAIN_FLAGS) == len({f.flag for f in RUN_FLAGS + TRAIN_FLAGS})
    # command is written by the trainer itself (how it was started), never given as a flag
    assert _declared(DAE_RUN_FLAGS + DAE_FLAGS) == {f.name for f in fields(DAETrainConfig)} - {"command"}


def test_a_classifier_config_survives_the_trip_through_its_command_line():
    config = TrainConfig(data="/d", layout="folders", target="covid", model="cnn", epochs=7, batch_size=12, lr=3e-4,
                         weight_decay=0.0, image_size=96, fit="thorax", equalize="clahe", augment=False,
                         augmentation="strong", freeze_epochs=2, seed=5, val_fraction=0.2, val_strata="label", patience=3,
                         balance="group", label_smoothing=0.1, ema_decay=0.99, source_adversary=0.5, holdout_source="nih",
                         covid_sensitivity=0.9, workers=2, limit=40, device="cpu", runs_dir="/r", run_id="x",
                         out="/o.pt")
    argv = config_argv(config, RUN_FLAGS + TRAIN_FLAGS, TrainConfig())
    args = build_parser().parse_args(["train", *argv])
    assert TrainConfig(**config_values(RUN_FLAGS + TRAIN_FLAGS, args, TrainConfig())) == config


def test_the_card_command_gives_back_the_recipe():
    config = TrainConfig(data="/anywhere", model="resnet18", image_size=160, epochs=12, balance="group",
                         ema_decay=0.99, covid_sensitivity=0.9, source_adversary=0.5, seed=0)
    argv = shlex.split(reproduce_command(config.__dict__, "weights/resnet18.pt"))
    args = build_parser().parse_args(["train", *argv[2:]])
    back = TrainConfig(**config_values(RUN_FLAGS + TRAIN_FLAGS, args, TrainConfig()))
    assert (back.balance, back.ema_decay, back.covid_sensitivity, back.source_adversary, back.image_size) == \
        ("group", 0.99, 0.9, 0.5, 160)
    assert "--seed 0" in " ".join(argv) and back.out == "weights/resnet18.pt"


def test_a_denoiser_config_survives_the_trip_and_train_py_denoise_keeps_its_own_defaults():
    config = DAETrainConfig(data="/d", epochs=3, steps_per_epoch=20, crop=96, sigma_min=2.0, sigma_max=40.0,
                            photons_min=4.0, photons_max=300.0, channels=(16, 32), seed=4, limit=10)
    argv = shlex.split(dae_reproduce_command(config.to_dict(), "weights/dae.pt"))
    args = build_parser().parse_args(argv[3:])
    back = DAETrainConfig(**config_values(DAE_RUN_FLAGS + DAE_FLAGS, args, DAETrainConfig()))
    assert (back.epochs, back.steps_per_epoch, back.crop, back.sigma_min, back.sigma_max, back.photons_min,
            back.photons_max, back.channels, back.seed, back.limit) == (3, 20, 96, 2.0, 40.0, 4.0, 300.0, (16, 32), 4, 10)
    shared = build_parser().parse_args(["train", "--task", "denoise", "--data", "/d"])
    own = DAETrainConfig(**config_values(DAE_RUN_FLAGS + DAE_FLAGS, shared, DAETrainConfig()))
    assert (own.epochs, own.batch_size, own.lr, own.image_size) == (DAETrainConfig.epochs, DAETrainConfig.batch_size,
                                                                    DAETrainConfig.lr, DAETrainConfig.image_size)


def test_form_help_comes_from_the_declared_flag():
    assert help_for(TRAIN_FLAGS, "source_adversary").startswith("Weight of a domain-adversarial source head")
    with pytest.raises(StopIteration):
        help_for(TRAIN_FLAGS, "no_such_setting")


def test_each_option_of_each_command_tells_its_default_once_and_never_as_none():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        for action in command._actions:
            if action.help is None or action.help == "==SUPPRESS==":
                continue
            text = command._get_formatter()._expand_help(action)
            said = text.count("(default")
            assert said <= 1, f"{name} {action.option_strings}: {text}"
            assert "(default: None)" not in text and "(default: )" not in text, f"{name} {action.option_strings}"
