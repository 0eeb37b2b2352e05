"""The emulator's acquisition calendar: when its "satellites" saw the ground (issue 14).

The same calendar holds everywhere on Earth (documented in ``docs/emulator.md``), so tests can
predict the scenes of any interval:

- Sentinel-2 (``sentinel-2-l1c``, ``sentinel-2-l2a``, ``S2L1C``, ``S2L2A``, ``hls``): one scene
  every 5 days (two satellites of 10-day revisit, 5 days apart) at
  ``2017-01-01T10:00:00Z + 5*k days`` for every integer ``k``; ``S2A`` for even ``k``, ``S2B``
  for odd ``k``.
- Sentinel-1 (``sentinel-1-grd``): every 6 days at ``2017-01-02T05:30:00Z + 6*k days``
  (``S1A``/``S1B``).
- Landsat (``landsat-*``): every 8 days at ``2017-01-03T10:15:00Z + 8*k days`` (``LC08``/``LC09``).
- ``dem``: one static scene, whatever the time range (dated :data:`scenes.DEFAULT_DATE`).
- Every other collection: daily at 12:00 UTC.

A time range selects the scenes whose time lies in ``[from, to]`` (both inclusive); without a
time range the request sees one scene dated :data:`scenes.DEFAULT_DATE`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .catalog import canonical, family
from .scenes import DEFAULT_DATE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Orbit:
    """A calendar: first acquisition, period and the platforms taking turns."""

    epoch: datetime
    period: timedelta
    platforms: tuple[str, ...]


_UTC = timezone.utc
CALENDARS = {
    "s2": Orbit(datetime(2017, 1, 1, 10, 0, tzinfo=_UTC), timedelta(days=5), ("S2A", "S2B")),
    "s1": Orbit(datetime(2017, 1, 2, 5, 30, tzinfo=_UTC), timedelta(days=6), ("S1A", "S1B")),
    "landsat": Orbit(
        datetime(2017, 1, 3, 10, 15, tzinfo=_UTC), timedelta(days=8), ("LC08", "LC09")
    ),
    "other": Orbit(datetime(2017, 1, 1, 12, 0, tzinfo=_UTC), timedelta(days=1), ("SAT",)),
}


#: Collection families with clouds (and ``maxCloudCoverage``/``leastCC``).
CLOUDY_FAMILIES = ("s2", "landsat", "hls")


@dataclass(frozen=True)
class Scene:
    """One acquisition."""

    date: datetime
    platform: str
    index: int  # k of the calendar
    cloud_coverage: float = 0.0  # % over the documented footprint (scenes_clouds step 6)
    cloudy: bool = False  # seen through the clouds of scenes_clouds

    @property
    def iso(self) -> str:
        """``2024-06-05T10:00:00Z``."""
        return self.date.strftime("%Y-%m-%dT%H:%M:%SZ")

    def tile(self, dtype: str) -> dict:
        """The ``scenes.tiles[]`` entry the service passes to evalscripts."""
        return {
            "date": self.iso,
            "shId": self.index,
            "cloudCoverage": self.cloud_coverage,
            "productId": f"{self.platform}_{self.date:%Y%m%dT%H%M%S}",
            "dataPath": f"emulator://{canonical(dtype)}/{self.date:%Y/%m/%d}/{self.index}",
        }


def calendar_of(dtype: str) -> Orbit | None:
    """The calendar of collection ``dtype`` (``None`` for the static DEM)."""
    fam = family(dtype)
    if fam == "dem":
        return None
    if fam == "hls":
        return CALENDARS["s2"]
    return CALENDARS.get(fam, CALENDARS["other"])


def has_clouds(dtype: str) -> bool:
    """Whether collection ``dtype`` sees clouds (the optical ones: S2, Landsat, HLS)."""
    return family(dtype) in CLOUDY_FAMILIES


def with_clouds(scenes: list[Scene], centre: tuple[float, float]) -> list[Scene]:
    """``scenes`` seen through the clouds, ``cloudCoverage`` of the cell holding ``centre``."""
    from dataclasses import replace

    from .scenes_clouds import cloud_coverage

    return [
        replace(s, cloudy=True, cloud_coverage=cloud_coverage(centre[0], centre[1], s.date))
        for s in scenes
    ]


def scenes_between(dtype: str, t_from: datetime | None, t_to: datetime | None) -> list[Scene]:
    """Scenes of ``dtype`` in ``[t_from, t_to]``, oldest first (clear: see :func:`with_clouds`)."""
    orbit = calendar_of(dtype)
    if orbit is None or t_from is None or t_to is None:
        return [Scene(DEFAULT_DATE, "STATIC" if orbit is None else orbit.platforms[0], 0)]
    first = math.ceil((t_from - orbit.epoch) / orbit.period)
    last = math.floor((t_to - orbit.epoch) / orbit.period)
    n = len(orbit.platforms)
    return [
        Scene(orbit.epoch + k * orbit.period, orbit.platforms[k % n], k)
        for k in range(first, last + 1)
    ]
