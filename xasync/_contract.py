"""Constants of the public Async API contract (``shared/spec/async-api.md``).

This is the only module that the emulator and the client share: the numbers and names that
the vendor publishes. No behaviour lives here, so a bug in one side cannot hide in the other.
"""

from __future__ import annotations

#: Create/status paths. The legacy one (also CDSE and sentinelhub-py) and the Planet-era one.
API_PATH_LEGACY = "/api/v1/async/process"
API_PATH_PLANET = "/async/v1/process"
API_PATHS = (API_PATH_LEGACY, API_PATH_PLANET)

#: The only status value the service reports; a finished request answers 404 instead.
STATUS_RUNNING = "RUNNING"

#: Output size bounds, in pixels per side (width and height each).
MIN_PIXELS_PER_SIDE = 1
MAX_PIXELS_PER_SIDE = 10_000

#: Cost rules of Async processing (processing units).
MIN_COST_PU = 10.0
#: Requests with at least this many output pixels (width * height) pay 2/3 of the base rate.
ASYNC_DISCOUNT_MIN_PIXELS = 10_000
ASYNC_DISCOUNT_FACTOR = 2.0 / 3.0
#: The area unit of the PU formula: one 512 x 512 px tile; the area factor is at least 0.01.
PU_AREA_UNIT_PX = 512 * 512
PU_MIN_AREA_FACTOR = 0.01

#: Delivery templating.
REQUEST_ID_PLACEHOLDER = "<REQUEST_ID>"
OUTPUT_PLACEHOLDER = "<OUTPUT>"
DEFAULT_URL_TEMPLATE_SUFFIX = f"{REQUEST_ID_PLACEHOLDER}/{OUTPUT_PLACEHOLDER}"

#: The failure report written next to the outputs.
ERROR_FILE = "error.json"
#: The request copy. Its real name is undocumented (spec section 14.1): the emulator's choice, kept
#: here so that it is changed in one place. The client never depends on it for completion.
REQUEST_COPY_FILE = "request.json"

#: Response identifier that carries ``outputMetadata.userData`` instead of a raster.
USERDATA_IDENTIFIER = "userdata"
DEFAULT_OUTPUT_ID = "default"

#: File extension per response ``format.type``.
FORMAT_EXTENSIONS = {
    "image/tiff": "tif",
    "image/png": "png",
    "image/jpeg": "jpg",
    "application/json": "json",
}

#: CRS URL forms accepted by the service.
OPENGIS_EPSG_PREFIX = "http://www.opengis.net/def/crs/EPSG/0/"
CRS84_URL = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

#: setup().output.sampleType -> NumPy dtype name of the written TIFF (Evalscript V3 docs).
SAMPLE_TYPE_DTYPES = {
    "AUTO": "uint8",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "INT8": "int8",
    "INT16": "int16",
    "FLOAT32": "float32",
}
DEFAULT_SAMPLE_TYPE = "AUTO"

#: Data collection types of the specs, plus the legacy short aliases the official examples use.
COLLECTION_TYPES = frozenset(
    {
        "sentinel-2-l1c",
        "sentinel-2-l2a",
        "sentinel-1-grd",
        "landsat-ot-l1",
        "landsat-ot-l2",
        "landsat-etm-l1",
        "landsat-etm-l2",
        "landsat-tm-l1",
        "landsat-tm-l2",
        "landsat-mss-l1",
        "landsat-8-l1c",
        "modis",
        "dem",
        "hls",
        "sentinel-3-olci",
        "sentinel-3-olci-l2",
        "sentinel-3-slstr",
        "sentinel-5p-l2",
        "S2L2A",
        "S2L1C",
    }
)
#: Prefixes of custom collection types (``byoc-<id>`` and the like).
CUSTOM_COLLECTION_PREFIXES = ("byoc-", "batch-", "zarr-")

#: 429 ``Retry-After`` header unit: milliseconds.
RETRY_AFTER_UNIT_SECONDS = 0.001

#: Field of the request copy where the emulator records the cost once processing ends. The real
#: service's field name is undocumented (spec section 14.1); the client reads it when present and
#: never depends on it.
REQUEST_COPY_COST_FIELD = "processingUnits"
