"""docs/recipes.md against the built-in recipes: every card row whose key is a config path must show
the value the recipe resolves to, and a row marked "same" must show the seed's value too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from layersv.backends import BACKENDS
from layersv.runs.assemble import assemble_config
from layersv.config import SECTIONS, to_dict

CARDS = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
TICK = re.compile(r"`([^`]*)`")


def cards() -> dict[str, list[list[str]]]:
    """``{"MODEL" or "MODEL + CONFIG": [row cells, ...]}`` from the ``<!-- recipe: ... -->`` sections."""
    out: dict[str, list[list[str]]] = {}
    current = None
    for line in CARDS.read_text().splitlines():
        m = re.match(r"<!-- recipe: (.+?) -->", line.strip())
        if m:
            current = m.group(1).strip()
            out[current] = []
        elif line.startswith("#"):
            current = None
        elif current and line.startswith("|") and not set(line) <= set("|- "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] != "key":
                out[current].append(cells)
    return out


def literal(cell: str):
    m = TICK.search(cell)
    return None if m is None else yaml.safe_load(m.group(1))


def lookup(d: dict, path: str):
    for part in path.split("."):  # train.lr, model.args.conv_dim, seed
        d = d[part]
    return d


def same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == pytest.approx(b, rel=1e-9, abs=1e-15)
    return a == b


CARD = cards()


def test_every_model_has_a_card_with_config_rows():
    assert set(BACKENDS) <= {k.split("+")[0].strip() for k in CARD}
    for name, rows in CARD.items():
        assert sum(1 for r in rows if TICK.fullmatch(r[0])) >= 2, name
        assert all(len(r) == 5 and all(r) for r in rows), f"{name}: every row has 5 non-empty cells"


def test_a_drifted_card_is_caught(monkeypatch, tmp_path):
    text = CARDS.read_text().replace("| `train.lr` | `0.003` (OneCycle max_lr) |", "| `train.lr` | `0.003` |", 1)
    drift = text.replace("| `0.003` | same |", "| `0.002` | same |", 1)
    assert drift != text
    (tmp_path / "recipes.md").write_text(drift)
    monkeypatch.setattr(__import__(__name__), "CARDS", tmp_path / "recipes.md")
    with pytest.raises(AssertionError, match="train.lr resolves to 0.003, the card says 0.002"):
        rows = cards()
        monkeypatch.setitem(CARD, "UniPool", rows["UniPool"])
        test_card_matches_the_resolved_recipe("UniPool")


@pytest.mark.parametrize("name", sorted(CARD))
def test_card_matches_the_resolved_recipe(name):
    model, _, config = (x.strip() for x in name.partition("+"))
    cfg = to_dict(assemble_config("", model, config or None, {}))
    checked = 0
    for key_cell, seed_cell, where, ours_cell, why in CARD[name]:
        m = TICK.fullmatch(key_cell)
        if not m or m.group(1).split(".")[0] not in SECTIONS + ("seed",):
            continue
        path = m.group(1)
        resolved = lookup(cfg, path)
        ours = literal(ours_cell)
        assert same(resolved, ours), f"{name}: {path} resolves to {resolved!r}, the card says {ours!r}"
        seed = literal(seed_cell)
        if why.startswith("same") and seed is not None:
            assert same(seed, ours), f"{name}: {path} marked same but the seed value {seed!r} != {ours!r}"
        checked += 1
    assert checked >= 2
