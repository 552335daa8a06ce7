"""C++ literals for the oracle scripts' generated headers: float32 inputs with 9 significant digits
(exact), float64 expectations with 17, brace lists wrapped to the headers' width."""
import math


def _literal(v, digits, suffix):
    if math.isinf(v):
        return "-INFINITY" if v < 0 else "INFINITY"
    s = f"{v:.{digits}g}"
    if not any(ch in s for ch in ".en"):
        s += ".0"
    return s + suffix


def f32(v):
    return _literal(v, 9, "f")


def f64(v):
    return _literal(v, 17, "")


def braced(items, width=104):
    """{a, b, ...}, wrapped onto continuation lines of at most `width` characters."""
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) + 2 > width:
            lines.append(line + ",")
            line = ""
        line = item if not line else line + ", " + item
    lines.append(line)
    return "{" + "\n         ".join(lines) + "}"


def floats(t):
    return braced([f32(v) for v in t.reshape(-1).tolist()])


def doubles(t):
    return braced([f64(v) for v in t.reshape(-1).tolist()])


def ints(t):
    return braced([str(int(v)) for v in t.reshape(-1).tolist()])
