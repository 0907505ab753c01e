"""Server-rendered SVG availability charts: one bar per time bucket against the 98.25% benchmark."""

import time
from html import escape

from .config import BENCHMARK_AVAILABILITY


def availability_svg(
    series: list[tuple[float, float | None]], title: str, width: int = 640, height: int = 160
) -> str:
    """Bars of availability per bucket (a floor of 90% so small dips show), a dashed benchmark line."""
    pad_l, pad_r, pad_t, pad_b = 44, 8, 22, 24
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
        step = series[1][0] - series[0][0] if len(series) > 1 else 3600.0
        fmt = "%Y-%m-%d %H:%M" if step >= 60 else "%Y-%m-%d %H:%M:%S"
        last = len(series) - 1
        for idx in sorted({0, last // 2, last}):  # dated ticks: start, middle, end (bucket start, local)
            label = time.strftime(fmt, time.localtime(series[idx][0]))
            x = pad_l + (idx + 0.5) * bw
            anchor = "start" if idx == 0 else "end" if idx == last else "middle"
            x = pad_l if idx == 0 else pad_l + w if idx == last else x
            parts.append(
                f'<line x1="{pad_l + (idx + 0.5) * bw:.1f}" x2="{pad_l + (idx + 0.5) * bw:.1f}" '
                f'y1="{pad_t + h}" y2="{pad_t + h + 3}" stroke="#8b949e"/>'
            )
            parts.append(
                f'<text x="{x:.1f}" y="{height - 5}" fill="#8b949e" text-anchor="{anchor}">{label}</text>'
            )
        span = f"{len(series)} bars of {_duration(step)}, local time"
        parts.append(f'<text x="{pad_l + w}" y="15" fill="#8b949e" text-anchor="end">{escape(span)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _duration(seconds: float) -> str:
    """A bucket width in words: 2 s, 15 min, 1 h, 1 d."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
