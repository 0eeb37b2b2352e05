"""xasync.rowgraph: the private fast paths give what dask's public constructors give."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from xasync import rowgraph
from xasync.errors import OptionError
from xasync.rowgraph import layered_graph, normalize_chunks


def _layers():
    return (
        {"a": {"a": 1}, "b": {("b", 0): (sum, ["a", "a"])}, "c": {"c": (len, "b")}},
        {"a": set(), "b": {"a"}, "c": {"b"}},
    )


def _same_graph(fast: HighLevelGraph, slow: HighLevelGraph) -> None:
    assert type(fast) is type(slow)
    assert fast.dependencies == slow.dependencies
    assert fast.key_dependencies == slow.key_dependencies
    assert list(fast.layers) == list(slow.layers)
    for name in slow.layers:
        a, b = fast.layers[name], slow.layers[name]
        assert type(a) is type(b) is MaterializedLayer
        assert dict(a) == dict(b)
        assert a.annotations == b.annotations
        assert a.collection_annotations == b.collection_annotations
    assert dict(fast) == dict(slow)
    assert fast.get_all_dependencies() == slow.get_all_dependencies()


def test_fast_graph_equals_the_public_constructor(monkeypatch):
    fast = [layered_graph(*_layers()) for _ in range(2)]
    assert fast[0].key_dependencies == {}
    monkeypatch.setattr(rowgraph, "FAST_GRAPH", False)
    _same_graph(fast[0], layered_graph(*_layers()))
    _same_graph(fast[1], HighLevelGraph(*_layers()))
    fast = fast[0]
    assert dask.get(fast, ("b", 0)) == 2


@pytest.mark.parametrize("context", ["annotate", "collection_annotations"])
def test_annotations_keep_the_public_constructor(context):
    """With annotations in force the layers carry them, as HighLevelGraph's own would."""
    if context == "annotate":
        with dask.annotate(priority=5):
            graph, public = layered_graph(*_layers()), HighLevelGraph(*_layers())
        assert graph.layers["a"].annotations == {"priority": 5}
    else:
        with dask.config.set(collection_annotations={"k": 1}):
            graph, public = layered_graph(*_layers()), HighLevelGraph(*_layers())
        assert graph.layers["a"].collection_annotations == {"k": 1}
    _same_graph(graph, public)


def test_normalize_chunks_cache_keeps_types_apart():
    """The cache of simple chunk specs never answers 2048.0 or True with 2048's or 1's."""
    assert normalize_chunks(2048, (5000, 3000)) == ((2048, 2048, 904), (2048, 952))
    assert normalize_chunks(1, (2, 2)) == ((1, 1), (1, 1))
    for bad in (2048.0, True, np.float64(8.0), "lots", 0):
        with pytest.raises(OptionError):
            normalize_chunks(bad, (5000, 3000))
    assert normalize_chunks(None, (10, 20)) == ((10,), (20,))
    assert normalize_chunks(-1, (5000, 3000)) == ((5000,), (3000,))
    assert normalize_chunks({"y": 100}, (300, 200)) == ((100, 100, 100), (200,))


@pytest.mark.parametrize("dims", [("y", "x"), ("band", "y", "x")])
def test_fast_variable_equals_the_public_constructor(monkeypatch, dims):
    import dask.array as da
    import xarray as xr

    from xasync.rowgraph import lazy_variable

    arr = da.ones((3, 4, 5)[-len(dims) :], chunks=2, dtype="float32")
    fast = lazy_variable(dims, arr, {"_FillValue": np.nan}, {"grid_mapping": "spatial_ref"})
    bare = lazy_variable(dims, arr, {}, {"grid_mapping": "spatial_ref"})
    monkeypatch.setattr(rowgraph, "FAST_VARIABLE", False)
    public = xr.Variable(
        dims, arr, attrs={"_FillValue": np.nan}, encoding={"grid_mapping": "spatial_ref"}
    )
    for var in (fast, lazy_variable(dims, arr, {"_FillValue": np.nan}, dict(public.encoding))):
        assert type(var) is xr.Variable and var.data is arr
        xr.testing.assert_identical(var, public)
        assert var.encoding == public.encoding and var.dims == public.dims
        assert var.chunks == public.chunks and var.dtype == public.dtype
    assert bare.attrs == xr.Variable(dims, arr).attrs == {}
    with pytest.raises(ValueError):  # dims that do not fit: the public constructor refuses
        lazy_variable(dims[1:], arr, {}, {})
    scalar = lazy_variable((), np.array(0), {"crs_wkt": "x"}, None)
    xr.testing.assert_identical(scalar, xr.Variable((), np.array(0), attrs={"crs_wkt": "x"}))
    assert scalar.encoding == {} and scalar.values.dtype == np.array(0).dtype
    when = np.array(["2024-01-01"], dtype="datetime64[D]")  # xarray converts these: public path
    assert lazy_variable(("t",), when, {}, None).dtype == xr.Variable(("t",), when).dtype
