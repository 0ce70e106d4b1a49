import pytest

from layersv.runs.assemble import assemble_config
from layersv.config import (Config, ConfigError, apply_overrides, from_dict, load_yaml_with_extends,
                            parse_override_args, save_config, load_config)
from layersv.runs.assemble import registries


def test_parse_override_args_forms():
    got = parse_override_args(["--batch_size", "64", "--frz_pretrain", "--lr=1e-3", "--layers", "[1,2]"])
    assert got == {"batch_size": "64", "frz_pretrain": "true", "lr": "1e-3", "layers": "[1,2]"}


def test_overrides_are_type_checked():
    cfg = Config()
    apply_overrides(cfg, {"batch_size": "64", "lr": "1e-3", "frz_pretrain": "true", "layers": "1,2,3"})
    assert cfg.train.batch_size == 64 and isinstance(cfg.train.batch_size, int)
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.frontend.frz_pretrain is True
    assert cfg.frontend.layers == [1, 2, 3]
    with pytest.raises(ConfigError, match="expected an integer"):
        apply_overrides(cfg, {"batch_size": "sixty"})
    with pytest.raises(ConfigError, match="boolean"):
        apply_overrides(cfg, {"frz_pretrain": "maybe"})


def test_unknown_key_names_closest():
    with pytest.raises(ConfigError, match="batch_size"):
        apply_overrides(Config(), {"batch_sise": "3"})
    with pytest.raises(ConfigError, match="unknown key train.nb_total_steps.*nb_total_step"):
        from_dict({"train": {"nb_total_steps": 3}})


def test_model_args_come_from_the_constructor_signature(tmp_path):
    cfg = assemble_config(str(tmp_path), "SUPERB", None, {"embedding_dim": "64", "margin": "0.3"})
    assert cfg.model.args["embedding_dim"] == 64
    assert cfg.head.args["margin"] == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="hidden_dim"):
        assemble_config(str(tmp_path), "SUPERB", None, {"hiden_dim": "64"})
    with pytest.raises(ConfigError, match="unknown model"):
        assemble_config(str(tmp_path), "NoSuchModel", None, {})


def test_switching_head_drops_incompatible_args(tmp_path):
    cfg = assemble_config(str(tmp_path), "SUPERB", "quickstart", {"head": "softmax"})
    assert cfg.head.head == "softmax" and cfg.head.args == {"bias": True}


def test_extends_and_round_trip(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: base\ntrain:\n  batch_size: 7\n  lr: 0.5\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\ntrain:\n  lr: 0.25\n")
    d = load_yaml_with_extends(tmp_path / "b.yaml")
    assert d["train"]["batch_size"] == 7 and d["train"]["lr"] == 0.25
    assert d["frontend"]["backbone_cfg"] == "tiny-wavlm"  # from base
    cfg = from_dict(d, registries())
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml", registries())
    assert again == cfg


def test_circular_extends(tmp_path):
    (tmp_path / "x.yaml").write_text("extends: y.yaml\n")
    (tmp_path / "y.yaml").write_text("extends: x.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_yaml_with_extends(tmp_path / "x.yaml")


def test_dotted_keys_and_ambiguity():
    cfg = Config()
    apply_overrides(cfg, {"train.batch_size": "5"})
    assert cfg.train.batch_size == 5
