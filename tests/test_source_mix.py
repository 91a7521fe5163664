"""Intra-label mixing across sources (``augment.mix_across_sources``, ``--source-mix``)."""

import torch

from covid_core.augment import mix_across_sources
from conftest import write_provenance


def _one_hot_films(n: int) -> torch.Tensor:
    """Film i is 1 at pixel i and 0 elsewhere, so a blend shows which films went into it."""
    x = torch.zeros(n, 1, 4, 4)
    x.view(n, -1)[torch.arange(n), torch.arange(n)] = 1.0
    return x


def test_every_film_is_blended_only_with_a_film_of_its_class_from_another_source():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 0])
    sources = torch.tensor([0, 1, 1, 0, 2, 1, 1, -100])  # class 2 has one source; the last film's is unknown
    x = _one_hot_films(8)
    for _ in range(20):
        out = mix_across_sources(x, labels, sources, share=1.0).view(8, -1)
        for i in range(8):
            present = torch.nonzero(out[i] > 0).flatten().tolist()
            if i in (5, 6, 7):  # no partner of the same class from another known source
                assert present == [i] and out[i, i] == 1.0
                continue
            assert i in present and len(present) == 2, present
            j = next(p for p in present if p != i)
            assert labels[j] == labels[i] and sources[j] != sources[i] and sources[j] >= 0
            assert torch.isclose(out[i].sum(), torch.tensor(1.0))  # a convex blend
            assert 0 < out[i, i] < 1


def test_share_zero_or_a_batch_of_one_changes_nothing():
    x = torch.rand(6, 1, 8, 8)
    labels, sources = torch.zeros(6, dtype=torch.long), torch.arange(6)
    assert torch.equal(mix_across_sources(x, labels, sources, 0.0), x)
    assert torch.equal(mix_across_sources(x[:1], labels[:1], sources[:1], 1.0), x[:1])
    torch.manual_seed(1)  # which films are blended is drawn per film: about half of them over many draws
    draws = torch.stack([(mix_across_sources(x, labels, sources, 0.5) != x).flatten(1).any(1) for _ in range(200)])
    assert 0.4 < draws.float().mean() < 0.6


def test_a_run_mixes_with_the_films_sources_and_refuses_without_two(folder_dataset, tmp_path, monkeypatch):
    import pytest

    from covid_core.errors import ConfigError
    from covid_core.training import TrainConfig, loop, run

    config = TrainConfig(data=str(folder_dataset), model="cnn", epochs=1, batch_size=4, image_size=32,
                         val_fraction=0.2, source_mix=0.5, runs_dir=str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="at least two sources in provenance.csv"):
        run(config, progress=False)  # no provenance.csv: no film has a known source to mix across

    write_provenance(folder_dataset, lambda i, f: "a" if i % 2 else "b")
    seen = []

    def recording(x, labels, sources, share):
        seen.append((share, sorted(set(sources.tolist()))))
        return mix_across_sources(x, labels, sources, share)

    monkeypatch.setattr(loop, "mix_across_sources", recording)
    config.run_id = "with-source-mix"
    assert run(config, progress=False).is_file()
    assert seen and all(share == 0.5 for share, _ in seen)
    assert set().union(*(set(s) for _, s in seen)) == {0, 1}  # both sources' codes reached the mixing step
