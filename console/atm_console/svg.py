"""Server-rendered SVG availability charts: one bar per time bucket against the 98.25% benchmark."""

import time
from html import escape

from .config import BENCHMARK_AVAILABILITY


def availability_svg(
    series: list[tuple[float, float | None]], title: str, width: int = 640, height: int = 160
) -> str:
    """Bars of availability per bucket (a floor of 90% so small dips show), a dashed benchmark line."""
    pad_l, pad_r, pad_t, pad_b = 44, 8, 22, 20
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    floor = 0.90

    def y(v: float) -> float:
        return pad_t + h * (1 - (max(v, floor) - floor) / (1 - floor))

    n = max(len(series), 1)
    bw = w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" font-family="system-ui,sans-serif" '
        'font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#161b22" rx="6"/>',
        f'<text x="{pad_l}" y="15" fill="#c9d1d9">{escape(title)}</text>',
    ]
    for tick in (0.90, 0.95, 1.0):
        ty = y(tick)
        parts.append(f'<line x1="{pad_l}" x2="{pad_l + w}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#30363d"/>')
        parts.append(
            f'<text x="{pad_l - 4}" y="{ty + 4:.1f}" fill="#8b949e" text-anchor="end">{tick:.0%}</text>'
        )
    for i, (_start, v) in enumerate(series):
        x = pad_l + i * bw + 1
        if v is None:
            continue
        colour = "#3fb950" if v >= BENCHMARK_AVAILABILITY else "#d29922" if v >= 0.95 else "#f85149"
        top = y(v)
        parts.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{max(bw - 2, 1):.1f}" height="{pad_t + h - top:.1f}" '
            f'fill="{colour}"><title>{v:.2%}</title></rect>'
        )
    by = y(BENCHMARK_AVAILABILITY)
    parts.append(
        f'<line x1="{pad_l}" x2="{pad_l + w}" y1="{by:.1f}" y2="{by:.1f}" stroke="#58a6ff" '
        'stroke-dasharray="4 3"/>'
    )
    parts.append(
        f'<text x="{pad_l + 4}" y="{by - 3:.1f}" fill="#58a6ff" text-anchor="start">'
        f"benchmark {BENCHMARK_AVAILABILITY:.2%}</text>"
    )
    if series:
        for idx in (0, len(series) - 1):
            label = time.strftime("%H:%M:%S", time.localtime(series[idx][0]))
            anchor = "start" if idx == 0 else "end"
            parts.append(
                f'<text x="{pad_l if idx == 0 else pad_l + w}" y="{height - 5}" fill="#8b949e" '
                f'text-anchor="{anchor}">{label}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
