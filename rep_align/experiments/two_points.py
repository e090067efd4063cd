"""The paper's two-point experiment: train presets over seeds, fit the effective theory,
summarise how well it describes each network (docs/theory.md §7, first row).

Declared once (``EXPERIMENT``, run by ``experiments._driver``). For each preset
(docs/presets.md, "Two-point task") under the trajectory protocol (lr/2, 2 × epochs), the
seeds are one sweep (``common.seed_spec``: blocks of 4 per device, so a seed's record does
not depend on how many seeds run with it), read through the driver's ``Runs.seeds`` under
the name ``<preset>-<hash>`` in the run store, which the depth and ablation experiments
read too. The analysis (``analyse_preset``) fits h (at the preset's read-out layer), y and
w of all seeds by the theory (``fit.fit_records``, float64), η_m to the loss curve, and
the analytic h∞ (docs/theory.md, eq. (3.2)) from the fitted rates. A run counts as
converged when its final loss is below 1e-2 (the paper's filter); means and spreads over
seeds (``_protocol.spread``) are taken over the converged seeds.

Quick and full (``settings``): quick runs the ``default`` preset over 4 seeds, full every
preset over 3 seeds, both at the presets' own sizes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rep_align import checks, fit, theory
from rep_align.experiments._protocol import Check, Experiment, Headline, spread
from rep_align.experiments.common import SeedRuns, observed
from rep_align.files import npz_field
from rep_align.predict import TwoPointRates
from rep_align.presets import TWO_POINT_PRESETS, TwoPointPreset, get_preset
from rep_align.sweep.store import CONVERGED_LOSS

__all__ = [
    "CHECKS",
    "EXPERIMENT",
    "GOOD_FIT",
    "MEAN_R2_BOUNDS",
    "SEED_KEYS",
    "PresetResult",
    "TwoPointsResult",
    "TwoPointsSettings",
    "analyse",
    "analyse_preset",
    "figures",
    "headlines",
    "preset_run_config",
    "protocol_preset",
    "read_rates",
    "settings",
]

#: R² thresholds (h, y, w) of a "good" fit, applied to every preset's mean over converged
#: seeds (``PresetResult.fit_quality`` and the headline "presets with a good fit").
GOOD_FIT = {"r2_h": 0.99, "r2_y": 0.995, "r2_w": 0.96}

#: The checks on the default preset's mean R² over converged seeds (``CHECKS``); the
#: validity map calls the theory holding where mean R² w reaches the same bound.
MEAN_R2_BOUNDS = {"r2_h": 0.99, "r2_y": 0.99, "r2_w": 0.95}

#: Keys of each per-seed row (``PresetResult.seeds``).
SEED_KEYS = (
    "seed",
    "eta_h",
    "eta_y",
    "eta_m",
    "fit_loss",
    "r2_h",
    "r2_y",
    "r2_w",
    "h0",
    "y0",
    "w0",
    "h_final",
    "y_final",
    "w_final",
    "loss_final",
    "h_inf_theory",
    "converged",
)


@dataclasses.dataclass(frozen=True)
class TwoPointsSettings:
    """What the two-point experiment runs.

    Attributes:
        presets: two-point preset names (docs/presets.md), each under the trajectory
            protocol.
        seeds: seeds per preset: ``first_seed``, ``first_seed + 1``, ….
        first_seed: the first seed.
        small: shrink every network to width ≤ 64, depth ≤ 4 (``TwoPointPreset.quick``):
            a fast pipeline outside the theory's regime; False: the presets' own sizes.
        float64: train in float64 from the float32 runs' initial parameters (about twice
            the time), so the two precisions differ only by rounding along the way.
    """

    presets: tuple[str, ...]
    seeds: int
    first_seed: int = 0
    small: bool = False
    float64: bool = False

    def __post_init__(self) -> None:
        names = (self.presets,) if isinstance(self.presets, str) else tuple(self.presets)
        if not names:
            raise ValueError("presets must name at least one two-point preset, got ()")
        unknown = [n for n in names if n not in TWO_POINT_PRESETS]
        if unknown:
            raise ValueError(
                f"presets: unknown two-point preset(s) {unknown}; known: {list(TWO_POINT_PRESETS)}"
            )
        object.__setattr__(self, "presets", names)
        checks.integer("seeds", self.seeds, minimum=1)
        checks.integer("first_seed", self.first_seed, minimum=0)
        checks.boolean("small", self.small)
        checks.boolean("float64", self.float64)

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds, in order."""
        return tuple(range(self.first_seed, self.first_seed + self.seeds))


def settings(quick: bool) -> TwoPointsSettings:
    """Quick: the ``default`` preset over 4 seeds; full: every preset over 3 seeds; both at
    the presets' own sizes (``rep-align reproduce`` and ``rep-align two-points``)."""
    if quick:
        return TwoPointsSettings(presets=("default",), seeds=4)
    return TwoPointsSettings(presets=tuple(TWO_POINT_PRESETS), seeds=3)


def protocol_preset(name: str, *, quick: bool) -> TwoPointPreset:
    """Preset ``name`` under the trajectory protocol, reduced in size when ``quick``."""
    preset = get_preset(name).trajectory_protocol()
    return preset.quick() if quick else preset


def preset_run_config(preset: TwoPointPreset, *, float64: bool = False):
    """The ``RunConfig`` the experiment trains for ``preset`` (as given: apply the protocol
    first). ``float64`` trains in float64 from the float32 runs' initial parameters."""
    if float64:
        return preset.config.replace(dtype="float64", init_dtype="float32")
    return preset.config


@dataclasses.dataclass(frozen=True)
class PresetResult:
    """One preset over seeds: per-seed fits and their summary.

    Attributes:
        config: the preset as run (``TwoPointPreset.describe()`` plus record_every and
            precision).
        seeds: per-seed rows with ``SEED_KEYS``.
        mean, std: over converged seeds, per numeric key (``_protocol.spread``).
        n_seeds, n_converged, diverged: counts.
        fit_quality: "good" (every mean R² at least ``GOOD_FIT``), "poor" or
            "no converged seeds".
        arrays: records and fitted trajectories, for the figures (kept in
            ``arrays.npz``): ``ts (T,)``, ``z_obs`` and ``z_fit (R, T, 3)``, ``loss`` and
            ``theory_loss (R, T)``, ``converged (R,)``, ``seeds (R,)``.
    """

    config: Mapping[str, Any]
    seeds: tuple[Mapping[str, Any], ...]
    mean: Mapping[str, float]
    std: Mapping[str, float]
    n_seeds: int
    n_converged: int
    diverged: int
    fit_quality: str
    arrays: Mapping[str, np.ndarray] = npz_field(repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class TwoPointsResult:
    """The two-point experiment: one ``PresetResult`` per preset, and the criteria its
    summary used (a run converged below ``converged_if_final_loss_below``; ``good_fit``)."""

    presets: Mapping[str, PresetResult]
    converged_if_final_loss_below: float = CONVERGED_LOSS
    good_fit: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(GOOD_FIT))


def analyse_preset(
    preset: TwoPointPreset, runs: SeedRuns, *, float64: bool = False
) -> PresetResult:
    """Fit and summarise the stored runs of one preset.

    Arguments:
        preset: the preset as it ran.
        runs: its runs over seeds (``Runs.seeds`` of the driver, or
            ``common.train_seeds``).
        float64: whether it trained in float64 (recorded in the config).
    """
    seeds = runs.seeds
    ts, z_obs = observed(runs.records, preset.layer)
    loss = np.asarray(runs.records["loss"], np.float64)
    m = np.asarray(runs.records["m"], np.float64)
    rates = fit.fit_records(ts, z_obs, dx2=preset.dx2, dy2=preset.dy2, return_trajectory=True)
    eta_h, eta_y, z_fit = rates.eta_h, rates.eta_y, rates.z_fit
    em = fit.fit_eta_m_records(ts, loss, z_fit, m0=m[:, 0], dy2=preset.dy2, out_dim=preset.out_dim)
    eta_m = em.eta_m
    h0, y0, w0 = z_obs[:, 0, 0], z_obs[:, 0, 1], z_obs[:, 0, 2]
    h_inf = fit.predicted_final_distance(h0, y0, eta_h, eta_y, preset.dx2, preset.dy2)
    converged = np.isfinite(loss[:, -1]) & (loss[:, -1] < CONVERGED_LOSS)
    rows = []
    for i, seed in enumerate(seeds):
        row = dict(
            seed=int(seed),
            eta_h=eta_h[i],
            eta_y=eta_y[i],
            eta_m=eta_m[i],
            fit_loss=rates.loss[i],
            r2_h=rates.r2[i, 0],
            r2_y=rates.r2[i, 1],
            r2_w=rates.r2[i, 2],
            h0=h0[i],
            y0=y0[i],
            w0=w0[i],
            h_final=z_obs[i, -1, 0],
            y_final=z_obs[i, -1, 1],
            w_final=z_obs[i, -1, 2],
            loss_final=loss[i, -1],
            h_inf_theory=h_inf[i],
            converged=bool(converged[i]),
        )
        rows.append({k: (v if k in ("seed", "converged") else float(v)) for k, v in row.items()})
    numeric = [k for k in SEED_KEYS if k not in ("seed", "converged")]
    over = {k: spread([r[k] for r in rows if r["converged"]]) for k in numeric}
    mean = {k: s.mean for k, s in over.items()}
    if not converged.any():
        quality = "no converged seeds"
    elif all(np.isfinite(mean[k]) and mean[k] >= v for k, v in GOOD_FIT.items()):
        quality = "good"
    else:
        quality = "poor"
    theory_loss = np.full_like(loss, np.nan)
    fin = np.isfinite(eta_m)
    if fin.any():
        theory_loss[fin] = np.asarray(
            theory.loss_curve(
                ts,
                z_fit[fin],
                eta_m=eta_m[fin],
                m0=m[fin, 0],
                dy2=preset.dy2,
                out_dim=preset.out_dim,
            )
        )
    config = preset.describe() | dict(
        record_every=preset.config.record_every, precision="float64" if float64 else "float32"
    )
    return PresetResult(
        config=config,
        seeds=tuple(rows),
        mean=mean,
        std={k: s.std for k, s in over.items()},
        n_seeds=len(seeds),
        n_converged=int(converged.sum()),
        diverged=int(np.sum(runs.table["diverged"])),
        fit_quality=quality,
        arrays=dict(
            ts=ts,
            z_obs=z_obs,
            z_fit=z_fit,
            loss=loss,
            theory_loss=theory_loss,
            converged=converged,
            seeds=np.asarray(seeds),
        ),
    )


def analyse(settings: TwoPointsSettings, runs: Any) -> TwoPointsResult:
    """Every preset of ``settings``, trained (or read back) through the driver's ``runs``
    and fitted (``analyse_preset``)."""
    presets = [protocol_preset(n, quick=settings.small) for n in settings.presets]
    done: dict[str, PresetResult] = {}
    for k, preset in enumerate(presets):
        config = preset_run_config(preset, float64=settings.float64)
        stored = runs.seeds(config, settings.seed_list, name=preset.name)
        res = done[preset.name] = analyse_preset(preset, stored, float64=settings.float64)
        m = res.mean
        runs.say(
            f"  [{k + 1}/{len(presets)} presets] {preset.name}: R² h {m['r2_h']:.3f}"
            f" y {m['r2_y']:.3f} w {m['r2_w']:.3f}, {res.n_converged}/{res.n_seeds}"
            f" converged, fit {res.fit_quality}"
        )
    return TwoPointsResult(done)


def _r2_name(key: str) -> str:
    return f"default: mean {key.replace('r2_', 'R² ')}"


def headlines(result: TwoPointsResult, settings: TwoPointsSettings) -> list[Headline]:
    """The default preset's mean R² of h, y, w over converged seeds, and how many presets
    fit well (when more than one ran)."""
    out = []
    d = result.presets.get("default")
    if d is not None:
        for key in MEAN_R2_BOUNDS:
            s = spread([r[key] for r in d.seeds if r["converged"]])
            out.append(Headline(_r2_name(key), s.mean, s.std, s.n))
    if len(result.presets) > 1:
        good = [k for k, v in result.presets.items() if v.fit_quality == "good"]
        out.append(
            Headline(
                "presets with a good fit",
                float(len(good)),
                n=len(result.presets),
                note=", ".join(good),
            )
        )
    return out


#: The verdicts: the default network's fitted theory follows h, y and w.
CHECKS = tuple(
    Check(
        _r2_name(key),
        ">=",
        bound,
        source=(
            "this project's bound: the paper shows the fitted theory following h, y and w "
            "(docs/theory.md §7, 'high R²') and gives no number; the default preset at full "
            "size gives mean R² h 0.995, y 0.997, w 0.964 over 5 seeds "
            "(reproduction/README.md)"
        ),
    )
    for key, bound in MEAN_R2_BOUNDS.items()
)


def figures(result: TwoPointsResult, settings: TwoPointsSettings) -> dict[str, Any]:
    """The R² table of every preset (``r2_overview``) and each preset's trajectories."""
    from rep_align import plots

    entries = {
        name: {f.name: getattr(res, f.name) for f in dataclasses.fields(res) if f.name != "arrays"}
        for name, res in result.presets.items()
    }
    overview = dict(
        settings=dict(
            seeds=settings.seeds,
            quick=settings.small,
            precision="float64" if settings.float64 else "float32",
            good_fit=dict(result.good_fit),
        ),
        presets=entries,
    )
    figs = {"r2_overview.png": plots.two_point_overview(overview)}
    for name, res in result.presets.items():
        figs[f"{name}_trajectories.png"] = plots.two_point_trajectories(entries[name], res.arrays)
    return figs


EXPERIMENT = Experiment(
    name="two_points",
    title="Two-point trajectories",
    claim=(
        "The effective theory, with two fitted rates, follows a network's h, y and w "
        "through the whole run (high R² for all three), for networks flexible enough "
        "(docs/theory.md §7)."
    ),
    settings=settings,
    analyse=analyse,
    headlines=headlines,
    checks=CHECKS,
    figures=figures,
)


def read_rates(
    path: str | Path, *, preset: str = "default", allow_small: bool = False
) -> TwoPointRates:
    """The mean fitted η_h, η_y of ``preset`` in the output of ``rep-align two-points``.

    Reads ``path/summary.json`` (or ``path`` itself if it is a file): the driver's summary
    (``result.presets.<preset>.seeds``), or the older layout of the files committed in
    ``reproduction/`` (``presets.<preset>.seeds``). The means are taken over the converged
    seeds with finite rates (``predict.TwoPointRates.from_rows``; the reference study's
    ``etas_h["default"]``, ``etas_y["default"]``, docs/presets.md "XOR").

    Arguments:
        path: output directory of ``rep-align two-points``, or its summary file.
        preset: two-point preset whose rates are read (default "default").
        allow_small: accept a summary of shrunk networks (``--small``; ``quick`` in the
            older layout: width ≤ 64, depth ≤ 4, not the paper's network). Default False.

    Raises:
        ValueError: missing or unreadable file, not a two-point output, the preset not in
            it, shrunk networks without ``allow_small``, or no converged seed with finite
            rates.
    """
    import json

    path = Path(path)
    file = path / "summary.json" if path.is_dir() else path
    try:
        doc = json.loads(file.read_text())
    except FileNotFoundError:
        raise ValueError(f"no two-point summary at {file} (run `rep-align two-points`)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read the two-point summary {file}: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{file} is not a two-point summary")
    if "experiment" in doc:  # the driver's summary.json
        if doc["experiment"] != "two_points" or not isinstance(doc.get("result"), dict):
            raise ValueError(f"{file} is the summary of {doc['experiment']!r}, not two_points")
        presets, small = doc["result"].get("presets"), doc.get("settings", {}).get("small")
    else:
        presets, small = doc.get("presets"), doc.get("settings", {}).get("quick")
    if not isinstance(presets, dict) or preset not in presets:
        known = ", ".join(presets) if isinstance(presets, dict) else "none"
        raise ValueError(f"{file} has no two-point preset {preset!r} (it has: {known})")
    if small and not allow_small:
        raise ValueError(
            f"{file} was written with shrunk networks (--small; --quick in older outputs), "
            "whose rates are not the paper-size preset's; rerun `rep-align two-points` "
            "without it"
        )
    rows = presets[preset].get("seeds", [])
    return TwoPointRates.from_rows(rows, preset=preset, source=str(file))
