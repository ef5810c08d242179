//! Document quality for loam: language identification (fastText `lid.176.ftz`), the
//! heuristic rules of Gopher, C4 and FineWeb (each its own type with a named drop reason),
//! the fastText quality classifier, the corpus quality score and the dataset report.
//!
//! Empty until the `filter` stage lands (issue 3); the pipeline depends on it then.
