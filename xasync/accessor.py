"""The ``.xasync`` accessor on GeoDataFrames (registered by ``import xasync``).

Thin by design: it checks that it sits on a GeoDataFrame and delegates to
:func:`xasync.process.process`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from xasync.errors import ValidationError

if TYPE_CHECKING:
    from xasync.client import Client
    from xasync.results import Results
    from xasync.submitter import SubmitOptions


@pd.api.extensions.register_dataframe_accessor("xasync")
class XasyncAccessor:
    """Sentinel Hub Async processing for each geometry of a GeoDataFrame.

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

    def process(
        self,
        evalscript: str,
        data: str | Sequence[Mapping[str, Any]] = "sentinel-2-l2a",
        time: Any = None,
        resolution: float | tuple[float, float] | None = None,
        size: tuple[int, int] | None = None,
        crs: Any = None,
        delivery: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        client: Client | None = None,
        chunks: int | tuple[int, int] | Mapping[str, int] | None = None,
        mask: bool = False,
        *,
        outputs: Mapping[str, Any] | None = None,
        responses: Sequence[str] | None = None,
        bounds: str = "geometry",
        iam_role_arn: str | None = None,
        resubmit_failed: bool = False,
        options: SubmitOptions | None = None,
        freq: Any = None,
        temporal: str = "orbit",
        reducer: str = "median",
    ) -> Results:
        """Submit one Async API request per geometry; return lazy Datasets at once.

        Parameters
        ----------
        evalscript : str
            The evalscript text, or ``"s3://..."`` to send it as an ``evalscriptReference``.
        data : str or list of dict
            A collection type (``"sentinel-2-l2a"``...) or the full ``input.data`` list.
        time : tuple or str
            ``(start, end)`` as strings, dates or timestamps; a bare date as the end means the
            whole day. A single value means that one day.
        resolution : float or (float, float)
            Pixel size in CRS units. Exactly one of ``resolution`` and ``size``.
        size : (int, int)
            ``(width, height)`` in pixels.
        crs : optional
            Request CRS: default the GeoDataFrame's, ``"utm"`` for each geometry's UTM zone, or
            anything pyproj accepts.
        delivery : str
            ``"s3://bucket/prefix"``; each row is delivered under its own deterministic prefix
            below it, so re-running the same call buys nothing again.
        storage_options : dict, optional
            s3fs options used to probe and read the delivery. Their ``key``/``secret`` are also
            sent as the delivery credentials the service writes with. When given, they travel
            in the dask graph to the workers that read; otherwise workers use their own
            AWS environment.
        client : xasync.Client, optional
            Endpoint and credentials; default :meth:`xasync.Client.from_env`.
        chunks : int, (int, int) or dict, optional
            Dask chunk size in pixels for ``y``/``x`` (default 2048, a multiple of the usual
            GeoTIFF tile sizes).
        mask : bool
            Pixels outside the geometry become NaN (floats).
        outputs : dict, optional
            ``{identifier: {"bands": n, "sampleType": "FLOAT32"}}`` when the evalscript's
            ``setup()`` cannot be evaluated locally.
        responses : list of str, optional
            Which outputs to request (default: every output of ``setup()``).
        bounds : {"geometry", "bbox"}
            Send each geometry (pixels outside are 0) or only its bounding box.
        iam_role_arn : str, optional
            A role the service assumes to write to the bucket instead of keys.
        resubmit_failed : bool
            Buy new requests for rows whose earlier delivery failed.
        options : xasync.submitter.SubmitOptions, optional
            Polling and retry tuning.
        freq : str, pandas offset or list of (start, end), optional
            A time series per row: ``"10D"``, ``"W"``, ``"MS"``... cuts ``time`` into intervals
            starting at ``pd.date_range(start, end, freq=freq)`` (or give the intervals). Each
            Dataset then has a ``time`` dimension (interval starts; ``time_end`` beside it),
            known before delivery. See :mod:`xasync.temporal`.
        temporal : {"orbit", "requests"}
            With ``freq``: ``"orbit"`` buys one multi-temporal request per row (the evalscript,
            a single-scene V3 script, is wrapped; a ``scenes`` coordinate counts the scenes of
            each interval); ``"requests"`` buys one ordinary request per row and interval (for
            scripts that cannot be wrapped, e.g. data fusion; the result is then an
            :class:`xasync.series_results.SeriesResults`). The wrapped outputs are FLOAT32 (the
            ``evaluatePixel`` values as they are, NaN where no scene is valid).
        reducer : {"median", "mean", "min", "max", "first", "last", "count"}
            With ``temporal="orbit"``: how each interval's valid scenes (``dataMask``) become one
            value; an interval without one is NaN (``"last"``: the most recent observation, as a
            request over that interval alone returns).

        Returns
        -------
        xasync.Results
            Lazy Datasets aligned with the rows, and their requests' states.

        Raises
        ------
        xasync.ValidationError
            Bad input, before any request is sent.
        xasync.AuthError
            Wrong Sentinel Hub credentials, before any request is sent.

        """
        from xasync.process import process

        if delivery is None:
            raise ValidationError("delivery='s3://bucket/prefix' is required")
        return process(
            self._gdf,
            evalscript,
            data=data,
            time=time,
            resolution=resolution,
            size=size,
            crs=crs,
            delivery=delivery,
            storage_options=storage_options,
            client=client,
            chunks=chunks,
            mask=mask,
            outputs=outputs,
            responses=responses,
            bounds=bounds,
            iam_role_arn=iam_role_arn,
            resubmit_failed=resubmit_failed,
            options=options,
            freq=freq,
            temporal=temporal,
            reducer=reducer,
        )
