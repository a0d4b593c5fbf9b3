#!/usr/bin/env python3
"""Fit the coefficients of `kernels::erf` (src/model/kernels.rs): erf(x) on
[0, 4] as x·P(x²)/Q(x²), P of degree 5 and Q of degree 5 in x² with Q(0) = 1,
to the smallest largest error. Linearised least squares (x·P − erf·Q = 0,
weighted by 1/Q of the previous pass), then Lawson's reweighting towards the
minimax fit; prints the f32 coefficients and the largest error of the f32
evaluation (fused multiply-adds, as the 16-lane form runs it) on a dense grid.

    python scripts/fit-erf.py          # needs numpy and mpmath
"""
import mpmath
import numpy as np

TOP, P_TERMS, Q_TERMS = 4.0, 6, 5


def fit():
    x = np.linspace(0.0, TOP, 8001)
    f = np.array([float(mpmath.erf(v)) for v in x])
    t = x * x
    weight, lawson, best = np.ones_like(x), np.ones_like(x), None
    for round_ in range(80):
        w = weight * lawson
        columns = [w * x * t**i for i in range(P_TERMS)] + [-w * f * t**i for i in range(1, Q_TERMS + 1)]
        solution, *_ = np.linalg.lstsq(np.stack(columns, 1), w * f, rcond=None)
        p, q = solution[:P_TERMS], np.concatenate([[1.0], solution[P_TERMS:]])
        pv = sum(p[i] * t**i for i in range(P_TERMS))
        qv = sum(q[i] * t**i for i in range(Q_TERMS + 1))
        error = x * pv / qv - f
        largest = np.abs(error).max()
        if best is None or largest < best[0]:
            best = (largest, p.copy(), q.copy())
        weight = 1.0 / np.abs(qv)
        if round_ > 5:
            lawson = lawson * np.sqrt(np.abs(error) / largest + 1e-3)
            lawson /= lawson.mean()
    return best


def f32_erf(p, q):
    p, q = [np.float32(c) for c in p], [np.float32(c) for c in q]

    def fma(a, b, c):
        return np.float32(np.float64(a) * np.float64(b) + np.float64(c))

    def erf(v):
        v = np.float32(min(v, TOP))
        t = np.float32(v * v)
        num = p[-1]
        for c in p[-2::-1]:
            num = fma(num, t, c)
        den = q[-1]
        for c in q[-2::-1]:
            den = fma(den, t, c)
        return np.float32(np.float32(v * num) / den)

    return erf


def main():
    largest, p, q = fit()
    print("largest error, exact arithmetic:", largest)
    print("P:", [float(np.float32(c)) for c in p])
    print("Q (from x²):", [float(np.float32(c)) for c in q[1:]])
    erf = f32_erf(p, q)
    grid = np.linspace(0.0, 6.0, 120001).astype(np.float32)
    worst = max(abs(float(erf(v)) - float(mpmath.erf(float(v)))) for v in grid)
    print("largest error of the f32 evaluation on [0, 6]:", worst)


if __name__ == "__main__":
    main()
