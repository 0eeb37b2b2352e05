"""The ``.xasync`` accessor on GeoDataFrames (registered by ``import xasync``).

Thin by design: ``gdf.xasync.process(evalscript, **kw)`` is ``xasync.process(gdf, evalscript,
**kw)``. The parameters are defined once, on :func:`xasync.processing.process`; the accessor
method forwards to it and shows its signature and docstring (``help(gdf.xasync.process)``),
taken when first looked up so that ``import xasync`` stays light.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any

import pandas as pd

from xasync.errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable


def _forward_doc(doc: str) -> str:
    """The function's docstring for the method: the ``gdf`` parameter is the accessor's frame."""
    lines = doc.splitlines()
    out, skip = [], False
    for line in lines:
        if line.strip().startswith("gdf : "):
            skip = True
            continue
        if skip and line.startswith("        "):
            continue
        skip = False
        out.append(line)
    return "\n".join(out)


@functools.cache
def _method_signature() -> tuple[inspect.Signature, str]:
    from xasync.processing import process

    sig = inspect.signature(process)
    params = [p for name, p in sig.parameters.items() if name != "gdf"]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return sig.replace(parameters=[self_param, *params]), _forward_doc(process.__doc__ or "")


class _SharedParameters:
    """Descriptor: the accessor's ``process`` with the signature of ``xasync.process``."""

    def __get__(self, accessor: XasyncAccessor | None, owner: type | None = None) -> Callable:
        sig, doc = _method_signature()

        def process(self: XasyncAccessor, evalscript: str, /, **kwargs: Any) -> Any:
            from xasync.processing import process as run

            return run(self._gdf, evalscript, **kwargs)

        process.__signature__ = sig  # type: ignore[attr-defined]
        process.__doc__ = doc
        process.__qualname__ = "XasyncAccessor.process"
        return process if accessor is None else process.__get__(accessor, owner)


@pd.api.extensions.register_dataframe_accessor("xasync")
class XasyncAccessor:
    """Sentinel Hub Async processing for each geometry of a GeoDataFrame.

    ``gdf.xasync.process(evalscript, **kw)`` is :func:`xasync.process` ``(gdf, evalscript,
    **kw)``: same keyword-only parameters, same documentation (``help(gdf.xasync.process)``).

    Examples
    --------
    >>> import xasync
    >>> results = gdf.xasync.process(evalscript, time=("2024-06-01", "2024-06-30"),
    ...                              resolution=10, crs="utm", delivery="s3://bucket/ndvi")
    >>> results[0].ndvi.mean().compute()

    """

    def __init__(self, obj: pd.DataFrame) -> None:
        import geopandas as gpd

        if not isinstance(obj, gpd.GeoDataFrame):
            raise ValidationError(".xasync needs a GeoDataFrame (with a geometry column and a CRS)")
        self._gdf = obj

    process = _SharedParameters()

    def estimate(self, evalscript: str, /, **keywords: Any) -> pd.DataFrame:
        """What :meth:`process` with the same arguments would cost, row by row; nothing is sent.

        Takes the keywords of :meth:`process` (``delivery`` and ``client`` may be omitted),
        plus ``scenes``, ``input_bands``, ``remote`` and ``check_delivery``; see
        :func:`xasync.estimate.estimate`. Needs no client; without ``delivery`` no network (an
        ``s3://`` evalscript reference is read with ``storage_options``). With ``delivery``
        it looks at what is already there, as ``process`` would: ``pu_to_pay`` is what
        ``process`` would be charged.

        Returns
        -------
        pandas.DataFrame
            Indexed like the GeoDataFrame: ``requests``, ``width``, ``height``,
            ``estimated_pu`` (a request shared by several rows split among them, so the
            column sums to the total, also in ``.attrs["total_pu"]``), the factors,
            ``request_state`` and ``pu_to_pay`` (``.attrs["pu_to_pay"]``).
        """
        from xasync.estimate import estimate

        return estimate(self._gdf, evalscript, **keywords)
