"""A sweep's results as labelled arrays: an ``xarray.Dataset`` (optional extra ``xarray``).

``SweepResults.to_xarray()`` (``to_dataset`` here) gives one dataset for the whole store:

- dimension ``run`` (one per finished run, in plan order), indexed by the sweep's axes, so
  ``ds.sel(width=500, gain=1.0)`` selects the runs with those settings (a
  ``PandasMultiIndex`` over the axis coordinates; with no axes, ``run`` is indexed by
  ``run_id``);
- every per-run column of ``SweepResults.table`` as a variable over ``run`` (settings,
  status flags, summaries, fitted rates; the setting ``layer`` is called
  ``layer_setting``, since ``layer`` is a dimension), ``pair`` over (run, end);
- the recorded trajectories ``loss``, ``y``, ``w``, ``m`` over (run, time) and ``h`` over
  (run, time, layer), ``time`` in gradient steps. Groups that recorded at other times or
  had fewer hidden layers are NaN where they have no record.

netCDF cannot store a multi-index: ``save_dataset`` writes the dataset without it (the axis
names go in the attribute ``sweep_axes``) and ``open_dataset`` restores it, so the round
trip is exact. Without rep_align, ``xarray.open_dataset(path)`` reads the same file.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import xarray

__all__ = ["open_dataset", "save_dataset", "to_dataset"]

_TRAJ_1D = ("loss", "y", "w", "m")


def _xarray():
    try:
        import xarray
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "labelled results need xarray, an optional extra: pip install 'rep_align[xarray]'"
        ) from None
    return xarray


def to_dataset(results: Any) -> xarray.Dataset:
    """The store as an ``xarray.Dataset`` (module docstring).

    Arguments:
        results: a ``SweepResults`` (``rep_align.sweep.load_results``).

    Raises:
        ImportError: if xarray is not installed (``pip install 'rep_align[xarray]'``).
    """
    xr = _xarray()
    table = results.table
    n = len(results)
    axes = [name for name, _ in results.spec.axes]
    data: dict[str, Any] = {}
    for k, v in table.items():
        if k == "run_id" or k in axes:
            continue
        if v.ndim == 1:
            data["layer_setting" if k == "layer" else k] = ("run", v)
        elif k == "pair":
            data[k] = (("run", "end"), v)
    coords: dict[str, Any] = {"run_id": ("run", np.asarray(table["run_id"]).astype(str))}
    for name in axes:
        coords[name] = ("run", table[name]) if n else ("run", np.asarray([]))
    if results.spec.save_trajectories and n:
        times, layers, parts = _gather(results)
        coords["time"] = ("time", times)
        coords["layer"] = ("layer", np.arange(layers))
        for k in _TRAJ_1D:
            data[k] = (("run", "time"), parts[k])
        data["h"] = (("run", "time", "layer"), parts["h"])
    ds = xr.Dataset(data, coords=coords)
    ds.attrs["sweep_name"] = results.spec.name
    ds.attrs["sweep_axes"] = json.dumps(axes)
    ds.attrs["spec_toml"] = results.spec.to_toml()
    return _index(ds, axes)


def _index(ds: xarray.Dataset, axes: list[str]) -> xarray.Dataset:
    xr = _xarray()
    if axes:
        return ds.set_xindex(axes, xr.indexes.PandasMultiIndex)
    return ds.set_xindex("run_id")


def _gather(results: Any) -> tuple[np.ndarray, int, dict[str, np.ndarray]]:
    """Trajectories of every group on the union of record times and the most layers."""
    table = results.table
    groups = list(dict.fromkeys(str(g) for g in table["group"]))
    per_group = {g: results.trajectories(g) for g in groups}
    times = np.unique(np.concatenate([a["times"] for _, a in per_group.values()]))
    layers = max(a["h"].shape[-1] for _, a in per_group.values())
    row = {str(i): k for k, i in enumerate(table["run_id"])}
    n = len(results)
    parts: dict[str, np.ndarray] = {}
    for ids, arrays in per_group.values():
        cols = np.searchsorted(times, arrays["times"])
        rows = np.asarray([row[str(i)] for i in ids])
        for k in (*_TRAJ_1D, "h"):
            v = arrays[k]
            if k not in parts:
                shape = (n, len(times)) + ((layers,) if k == "h" else ())
                parts[k] = np.full(shape, np.nan, np.result_type(v.dtype, np.float32))
            if k == "h":
                parts[k][rows[:, None], cols[None, :], : v.shape[-1]] = v
            else:
                parts[k][rows[:, None], cols[None, :]] = v
    return times, layers, parts


def save_dataset(ds: xarray.Dataset, path: str | os.PathLike, **kwargs: Any) -> None:
    """Write a dataset from ``to_dataset`` to netCDF (``xarray.Dataset.to_netcdf``; keyword
    arguments pass through), without its index, which ``open_dataset`` restores."""
    flat = ds.drop_indexes(list(ds.xindexes))
    if "run" in flat.coords and flat["run"].dtype == object:
        flat = flat.drop_vars("run")
    flat.to_netcdf(path, **kwargs)


def open_dataset(path: str | os.PathLike, **kwargs: Any) -> xarray.Dataset:
    """Read a file written by ``save_dataset`` (fully loaded), with the run index restored."""
    xr = _xarray()
    with xr.open_dataset(path, **kwargs) as f:
        ds = f.load()
    return _index(ds, json.loads(ds.attrs.get("sweep_axes", "[]")))
