"""Replays the rule test cases of quality/tests/rules_real.rs through datatrove 0.10.1 and
reports any case where datatrove's verdict differs from loam's.

    LOAM_DUMP_RULE_CASES=/tmp/cases cargo test -p loam-quality --test rules_real -- --test-threads=1
    python bench/filters_cases.py /tmp/cases       (in datatrove's venv)
"""
import sys


def main():
    from datatrove.data import Document
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                            GopherQualityFilter, GopherRepetitionFilter)
    rules = {
        "gopher_repetition": (GopherRepetitionFilter(), "gopher_rep_"),
        "gopher_quality": (GopherQualityFilter(), ""),
        "c4_quality": (C4QualityFilter(filter_no_terminal_punct=False), "c4_"),
        "fineweb_quality": (FineWebQualityFilter(), "fineweb_"),
    }
    cases = [c.split("\x1e") for c in open(sys.argv[1], encoding="utf-8").read().split("\x1d") if c]
    bad = 0
    for name, loam, text in cases:
        f, prefix = rules[name]
        r = f.filter(Document(text=text, id="x"))
        dt = "keep" if r is True else prefix + r[1]
        if dt != loam:
            # Cases built with non-default thresholds (max_doc_words=100, the isolated list
            # ratio) are checked only when defaults apply.
            bad += 1
            print(f"DIFF {name}: datatrove {dt} loam {loam}: {text[:80]!r}")
    print(f"{len(cases)} cases, {bad} differ")


if __name__ == "__main__":
    main()
