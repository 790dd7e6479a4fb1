"""Write tests/data/mpdta.csv from moderndid 0.2.0's bundled copy of R did's ``mpdta``.

mpdta (Callaway & Sant'Anna 2021): 500 US counties, 2003-2007, log teen employment
(``lemp``), log population (``lpop``), first year of a minimum-wage increase
(``first.treat``, 0 = never). Run: ``uv run python tests/reference/scripts/extract_mpdta.py``.
"""

from pathlib import Path

import moderndid

OUT = Path(__file__).resolve().parents[2] / "data" / "mpdta.csv"


def main() -> None:
    df = moderndid.load_mpdta().to_pandas()
    df = df.sort_values(["countyreal", "year"]).reset_index(drop=True)
    df.to_csv(OUT, index=False, float_format="%.17g")
    print(f"wrote {OUT} ({len(df)} rows, moderndid {moderndid.__version__})")


if __name__ == "__main__":
    main()
