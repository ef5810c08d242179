"""datatrove 0.10.1's FineWeb rule chain on the documents of a NUL-separated file:
GopherRepetition -> GopherQuality -> C4Quality(filter_no_terminal_punct=False) ->
FineWebQuality, English. Prints one decision per line (`keep` or datatrove's reason) and,
on stderr, CPU seconds per document for the rules alone (the text is already in memory).

Needs the `if __name__ == "__main__"` guard: datatrove's filters may spawn processes.
"""
import json
import sys
import time


def main():
    from datatrove.data import Document
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                            GopherQualityFilter, GopherRepetitionFilter)
    docs = open(sys.argv[1], encoding="utf-8").read().split("\0")
    filters = [GopherRepetitionFilter(), GopherQualityFilter(),
               C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]
    families = ["gopher_rep", "gopher", "c4", "fineweb"]
    # Warm up spaCy (model construction is not per-document work).
    filters[1].filter(Document(text="warm up " * 60, id="w"))
    out = []
    t0 = time.process_time()
    for i, text in enumerate(docs):
        t_doc = time.process_time()
        doc = Document(text=text, id=str(i))
        verdict = "keep"
        for fam, f in zip(families, filters):
            r = f.filter(doc)
            if r is not True and r is not None:
                reason = r[1] if isinstance(r, tuple) else "dropped"
                verdict = f"{fam}:{reason}"
                break
        out.append(f"{verdict}\t{time.process_time() - t_doc:.9f}")
    cpu = time.process_time() - t0
    sys.stdout.write("\n".join(out) + "\n")
    sys.stderr.write(json.dumps({"docs": len(docs), "seconds_per_doc": cpu / len(docs)}) + "\n")


if __name__ == "__main__":
    main()
