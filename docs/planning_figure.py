"""Draw docs/guide/planning.svg: rows, requests and windows, computed by xasync.planner itself.

Run from the project root: ``python docs/planning_figure.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as mpatches
import matplotlib.pyplot as plt

from xasync.grid import PixelGrid
from xasync.planner import PackItem, pack_grids, tile_grid

OUT = Path(__file__).resolve().parent / "guide" / "planning.svg"
RES = 10.0


def _tiles(ax) -> None:
    grid = PixelGrid(32633, (0.0, 0.0, 7000.0, 5000.0), 700, 500)
    chunk = 128
    for tile in tile_grid(grid, 300):
        r, c, h, w = tile.window
        ax.add_patch(mpatches.Rectangle((c, r), w, h, fill=False, lw=2.2, ec="tab:blue"))
        ax.text(c + w / 2, r + h / 2, f"request\ntile {tile.index}", ha="center", va="center")
        # chunks never straddle a tile seam: they are cut at the seams, then every `chunk` px
        for y in range(r + chunk, r + h, chunk):
            ax.plot([c, c + w], [y, y], color="tab:gray", lw=0.6, ls=":")
        for x in range(c + chunk, c + w, chunk):
            ax.plot([x, x], [r, r + h], color="tab:gray", lw=0.6, ls=":")
    ax.add_patch(mpatches.Rectangle((0, 0), 700, 500, fill=False, lw=1, ec="black", ls="--"))
    ax.set_xlim(-20, 720)
    ax.set_ylim(520, -20)
    ax.set_aspect("equal")
    ax.set_title("Tiling: one 700 x 500 px row, max_request_px=300\n6 requests, one lazy array")
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")


def _fields() -> list[PackItem]:
    spots = [(0, 0), (30, 5), (62, -3), (18, 30), (50, 34), (80, 20)]
    items = []
    for cx, cy in ((100, 320), (400, 160)):
        for i, (dx, dy) in enumerate(spots):
            kx, ky = cx + dx, cy + dy
            w, h = 12 + 3 * (i % 3), 10 + 4 * (i % 2)
            g = PixelGrid(32633, (kx * RES, ky * RES, (kx + w) * RES, (ky + h) * RES), w, h)
            items.append(PackItem("ndvi", g, f"{kx},{ky}".encode()))
    return items


def _packs(ax) -> None:
    items = _fields()
    packs = pack_grids(items, max_px=200)
    for n, pack in enumerate(packs):
        minx, miny, maxx, maxy = (v / RES for v in pack.grid.bbox)
        ax.add_patch(
            mpatches.Rectangle(
                (minx, miny), maxx - minx, maxy - miny, fill=False, lw=2.2, ec="tab:blue"
            )
        )
        ax.text(minx, miny - 12, f"request {n + 1}: {pack.grid.width} x {pack.grid.height} px")
        for k, m in enumerate(pack.members):
            gx0, gy0, gx1, gy1 = (v / RES for v in items[m].grid.bbox)
            color = "tab:orange" if (n, k) == (0, 0) else "tab:green"
            ax.add_patch(
                mpatches.Rectangle((gx0, gy0), gx1 - gx0, gy1 - gy0, fc=color, ec="black", lw=0.5)
            )
        r, c, h, w = pack.windows[0]
        if n == 0:
            ax.annotate(
                f"row's window\n(row_off={r}, col_off={c},\n height={h}, width={w})",
                xy=(minx + c, maxy - r),
                xytext=(minx + 130, maxy - 60),
                arrowprops={"arrowstyle": "->"},
            )
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xlim(80, 520)
    ax.set_ylim(140, 420)
    ax.set_title("Packing: 12 small rows, pack=True\n2 requests instead of 12 (20 PU, not 120)")
    ax.set_xlabel("x / resolution")
    ax.set_ylabel("y / resolution")


def main() -> None:
    plt.rcParams["svg.hashsalt"] = "xasync-planning"  # stable ids: same figure, same file
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2))
    _tiles(left)
    _packs(right)
    fig.tight_layout()
    fig.savefig(OUT, format="svg", metadata={"Date": None})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
