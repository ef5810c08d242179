//! The local engine of the cluster step, in one process: from the signature tables of
//! every shard (and of earlier runs) to one decision per document, across all dumps at once.
//!
//! 1. Documents are put in survivor-rule order (external sort on dump rank, id) and
//!    numbered: ordinal 0 is the document every rule prefers most.
//! 2. `(exact hash, ordinal)` and `(band key, ordinal)` records are sorted externally;
//!    each equal-key group becomes a chain of candidate edges, ordered by dump so that any
//!    prefix of dumps stays connected, and written to one edge file per (later) dump.
//! 3. Union-find adds dumps in chronological order, union by smaller ordinal: the removal
//!    rate after dump k is the dedup-rate-vs-dumps curve (documents − clusters among the
//!    first k dumps); after the last dump every cluster's root is its survivor.
//! 4. Lines of survivors are counted (external sort); those in more than `max_docs`
//!    survivors are written out for `apply` to remove.
//!
//! Memory: the sort buffers plus ~24 bytes per document (ordinals, dumps, parents, id
//! hashes) stay within `memory_limit_mb`; everything else is streamed or spilled.
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use xxhash_rust::xxh3::xxh3_64;

use super::cluster::{
    merge_dumps, prepare_cluster, ClusterOutcome, ClusterRunStats, ClusterSummary, CurvePoint, Decision,
    DecisionsWriter, Prepared, Status,
};
use super::graph::{jaccard, EdgeFiles, ShingleStore, UnionFind};
use super::{DedupConfig, IndexPaths, KeepRule};
use crate::error::{PipelineError, Result};
use crate::sort::{le_u64, ExternalSorter};
use crate::stage::ShardId;

/// Per-document arrays held during clustering: ordinal map, dump, parent, id hash, size.
const BYTES_PER_DOC: u64 = 4 + 2 + 4 + 8 + 4 + 2;
/// Headroom for Parquet readers, writers and the process itself.
const RESERVE: u64 = 48 << 20;

/// Calls `f` with each batch of `cols` from a signature table.
fn scan(path: &Path, cols: &[&str], f: impl FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
    crate::schema::scan_columns(
        path,
        cols,
        "rerun `loam dedup --phase signatures --force` for its shard",
        f,
    )
}

fn col<'b>(b: &'b RecordBatch, path: &Path, name: &str) -> Result<&'b dyn Array> {
    b.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| PipelineError::BadFile {
            path: path.to_owned(),
            offset: 0,
            what: format!("signature table without a `{name}` column"),
            fix: "rerun `loam dedup --phase signatures --force`".into(),
        })
}

fn str_col<'b>(b: &'b RecordBatch, path: &Path, name: &str) -> Result<&'b arrow_array::StringArray> {
    col(b, path, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| bad_col(path, name))
}

fn bin_col<'b>(b: &'b RecordBatch, path: &Path, name: &str) -> Result<&'b arrow_array::BinaryArray> {
    col(b, path, name)?
        .as_binary_opt::<i32>()
        .ok_or_else(|| bad_col(path, name))
}

fn le_words(b: &[u8]) -> impl Iterator<Item = u64> + '_ {
    b.chunks_exact(8).map(le_u64)
}

/// A signature table taking part in clustering.
struct Table {
    path: PathBuf,
    rows: usize,
    /// `Some(shard)` for this run's own shards, which get a decisions file.
    shard: Option<ShardId>,
}

/// Runs step 2 over the `of` committed signature shards of `stage_dir` (fingerprint
/// `signatures_fp`) and the configured earlier indexes with the local engine: prepare, then
/// the five passes of the module doc, then commit.
pub fn run_cluster(
    stage_dir: &Path,
    cfg: &DedupConfig,
    signatures_fp: &str,
    of: usize,
    force: bool,
) -> Result<ClusterOutcome> {
    let job = match prepare_cluster(stage_dir, cfg, signatures_fp, of, force)? {
        Prepared::AlreadyDone(s) => return Ok(ClusterOutcome::AlreadyDone(s)),
        Prepared::Job(job) => job,
    };
    let tables = job
        .tables
        .iter()
        .map(|t| Table {
            path: t.path.clone(),
            rows: 0,
            shard: t.shard,
        })
        .collect();
    let mut c = Clustering::count(cfg, tables, job.tmp.clone())?;
    let mut run_stats = ClusterRunStats {
        engine: "local".into(),
        ..Default::default()
    };
    let mut summary = ClusterSummary {
        fingerprint: job.fingerprint.clone(),
        dumps: c.dumps.clone(),
        ..Default::default()
    };
    run_stats.spilled_bytes += c.number_documents(&job.paths)?;
    let edges = c.candidate_edges(&mut summary, &mut run_stats)?;
    let (mut uf, status) = c.join_dumps(&edges, &mut summary)?;
    let recurring = c.recurring_lines(&status, &mut summary, &mut run_stats)?;
    c.write_decisions(&job.paths, &mut uf, &status)?;
    run_stats.documents = c.n as u64;
    run_stats.sort_budget_bytes = c.budget as u64;
    run_stats.per_document_array_bytes = c.array_bytes;
    Ok(ClusterOutcome::Done(job.commit(cfg, summary, &recurring, run_stats)?))
}

/// The state the passes share: the tables, the dumps, and the per-document arrays.
struct Clustering<'a> {
    cfg: &'a DedupConfig,
    tables: Vec<Table>,
    tmp: PathBuf,
    dumps: Vec<String>,
    /// Dumps that came from earlier indexes (incremental runs).
    prev_dumps: BTreeSet<String>,
    n: usize,
    budget: usize,
    array_bytes: u64,
    /// Per table, per row: the document's ordinal.
    ord_of: Vec<Vec<u32>>,
    /// Per ordinal: dump index and id hash.
    dump_of: Vec<u16>,
    id_hash: Vec<u64>,
}

impl<'a> Clustering<'a> {
    /// Pass 1: the dumps and row counts of every table; the memory budget they leave.
    fn count(cfg: &'a DedupConfig, mut tables: Vec<Table>, tmp: PathBuf) -> Result<Self> {
        let mut prev_dumps = BTreeSet::new();
        let mut own_dumps = BTreeSet::new();
        for t in &mut tables {
            let mut rows = 0;
            let set = if t.shard.is_some() {
                &mut own_dumps
            } else {
                &mut prev_dumps
            };
            scan(&t.path, &["dump"], |b| {
                let d = str_col(b, &t.path, "dump")?;
                for i in 0..d.len() {
                    if !set.contains(d.value(i)) {
                        set.insert(d.value(i).to_owned());
                    }
                }
                rows += b.num_rows();
                Ok(())
            })?;
            t.rows = rows;
        }
        let dumps = merge_dumps(&prev_dumps, &own_dumps)?;
        let n: usize = tables.iter().map(|t| t.rows).sum();
        if n >= u32::MAX as usize {
            return Err(PipelineError::Config(format!(
                "{n} documents: at most 4294967294 per dedup run"
            )));
        }
        let limit = cfg.memory_limit_mb << 20;
        let verify = cfg.minhash.enabled && cfg.minhash.verify_jaccard > 0.0;
        let array_bytes = (BYTES_PER_DOC + if verify { 12 } else { 0 }) * n as u64;
        let budget = limit.saturating_sub(array_bytes + RESERVE);
        if budget < (16 << 20) {
            return Err(PipelineError::Config(format!(
                "dedup.memory_limit_mb = {}: {n} documents need {} MB of per-document arrays plus {} MB; \
                 raise the limit to at least {} MB",
                cfg.memory_limit_mb,
                array_bytes >> 20,
                (RESERVE >> 20) + 16,
                ((array_bytes + RESERVE) >> 20) + 17
            )));
        }
        // LOAM_DEDUP_SORT_BYTES shrinks the sort budget so tests can force spilling on a
        // small corpus; spilling changes where records wait, never the decisions.
        let budget = std::env::var("LOAM_DEDUP_SORT_BYTES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(budget as usize);
        Ok(Self {
            cfg,
            tables,
            tmp,
            dumps,
            prev_dumps,
            n,
            budget,
            array_bytes,
            ord_of: Vec::new(),
            dump_of: Vec::new(),
            id_hash: Vec::new(),
        })
    }

    /// Pass 2: documents numbered in survivor-rule order (external sort on dump rank,
    /// id); returns the bytes spilled.
    fn number_documents(&mut self, paths: &IndexPaths) -> Result<u64> {
        let n_dumps = self.dumps.len() as u16;
        let keep = self.cfg.keep;
        let rank = |d: u16| match keep {
            KeepRule::Earliest => d,
            KeepRule::Latest => n_dumps - 1 - d,
        };
        let dump_index: BTreeMap<&str, u16> = self
            .dumps
            .iter()
            .enumerate()
            .map(|(i, d)| (d.as_str(), i as u16))
            .collect();
        let mut ids = ExternalSorter::new(&self.tmp, "ids", self.budget);
        for (f, t) in self.tables.iter().enumerate() {
            let mut row = 0u32;
            scan(&t.path, &["id", "dump"], |b| {
                let id = str_col(b, &t.path, "id")?;
                let d = str_col(b, &t.path, "dump")?;
                for i in 0..b.num_rows() {
                    let di = dump_index.get(d.value(i)).copied().unwrap_or(0);
                    ids.push((rank(di), id.value(i).to_owned(), f as u32, row))?;
                    row += 1;
                }
                Ok(())
            })?;
        }
        let n = self.n;
        self.ord_of = self.tables.iter().map(|t| vec![0u32; t.rows]).collect();
        self.dump_of = vec![0u16; n];
        self.id_hash = vec![0u64; n];
        let mut ids = ids.finish()?;
        let mut assigned = 0usize;
        for (o, (r, id, f, row)) in ids.by_ref().take(n).enumerate() {
            self.ord_of[f as usize][row as usize] = o as u32;
            // The rank is its own inverse.
            self.dump_of[o] = rank(r);
            self.id_hash[o] = xxh3_64(id.as_bytes());
            assigned += 1;
        }
        if let Some(e) = ids.error.take() {
            return Err(e);
        }
        if assigned != n {
            return Err(PipelineError::Config(format!(
                "{}: signature tables changed while dedup read them ({assigned} of {n} documents); rerun",
                paths.signatures.display()
            )));
        }
        Ok(ids.spilled_bytes())
    }

    /// Each document's stored shingle set, for exact-Jaccard verification.
    fn shingle_store(&self) -> Result<ShingleStore> {
        let path = self.tmp.join("shingles.bin");
        let f = File::create(&path).map_err(|e| PipelineError::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let (mut offset, mut len) = (vec![0u64; self.n], vec![0u32; self.n]);
        let mut at = 0u64;
        for (f, t) in self.tables.iter().enumerate() {
            let mut row = 0usize;
            scan(&t.path, &["shingles"], |b| {
                let sh = bin_col(b, &t.path, "shingles")?;
                for i in 0..b.num_rows() {
                    let o = ordinal(&self.ord_of[f], row, &t.path)? as usize;
                    row += 1;
                    let v = sh.value(i);
                    w.write_all(v).map_err(|e| PipelineError::io(&path, e))?;
                    offset[o] = at;
                    len[o] = (v.len() / 4) as u32;
                    at += v.len() as u64;
                }
                Ok(())
            })?;
        }
        w.flush().map_err(|e| PipelineError::io(&path, e))?;
        drop(w);
        let file = File::open(&path).map_err(|e| PipelineError::io(&path, e))?;
        Ok(ShingleStore {
            file,
            path,
            offset,
            len,
        })
    }

    /// Pass 3: exact groups and band buckets become chained candidate edges, filed per
    /// (later) dump; returns the edge files and marks exact duplicates.
    fn candidate_edges(&self, summary: &mut ClusterSummary, run_stats: &mut ClusterRunStats) -> Result<Edges> {
        let (cfg, budget) = (self.cfg, self.budget);
        let mut exact = ExternalSorter::<(u128, u32)>::new(&self.tmp, "exact", budget / 4);
        let mut bands = ExternalSorter::<(u64, u32)>::new(&self.tmp, "bands", budget - budget / 4);
        for (f, t) in self.tables.iter().enumerate() {
            let mut row = 0usize;
            scan(&t.path, &["exact", "bands"], |b| {
                let ex = bin_col(b, &t.path, "exact")?;
                let bk = bin_col(b, &t.path, "bands")?;
                for i in 0..b.num_rows() {
                    let o = ordinal(&self.ord_of[f], row, &t.path)?;
                    row += 1;
                    if cfg.exact {
                        let v = ex.value(i);
                        if v.len() == 16 {
                            let mut x = [0u8; 16];
                            x.copy_from_slice(v);
                            exact.push((u128::from_le_bytes(x), o))?;
                        }
                    }
                    for k in le_words(bk.value(i)) {
                        bands.push((k, o))?;
                    }
                }
                Ok(())
            })?;
        }
        let dump_of = &self.dump_of;
        let mut edges = EdgeFiles::new(&self.tmp, self.dumps.len())?;
        let mut is_exact = vec![false; self.n];
        let mut members: Vec<u32> = Vec::new();
        let exact = exact.finish()?;
        run_stats.spilled_bytes += exact.spilled_bytes();
        exact.for_each_group(
            |r| r.0,
            |g| {
                for r in &g[1..] {
                    is_exact[r.1 as usize] = true;
                }
                members.clear();
                members.extend(g.iter().map(|r| r.1));
                edges.chain(&mut members, dump_of)
            },
        )?;
        let bands = bands.finish()?;
        run_stats.spilled_bytes += bands.spilled_bytes();
        let store = if cfg.minhash.enabled && cfg.minhash.verify_jaccard > 0.0 {
            Some(self.shingle_store()?)
        } else {
            None
        };
        let mut verifier = store.map(|s| Verifier::new(s, cfg.minhash.verify_jaccard));
        bands.for_each_group(
            |r| r.0,
            |g| {
                members.clear();
                members.extend(g.iter().map(|r| r.1));
                if let (Some(v), true) = (verifier.as_mut(), members.len() > 1) {
                    v.keep_similar(&mut members, dump_of)?;
                }
                edges.chain(&mut members, dump_of)
            },
        )?;
        summary.candidates_rejected_by_jaccard = verifier.map_or(0, |v| v.rejected);
        summary.candidate_edges = edges.count;
        Ok(Edges {
            files: edges.finish()?,
            is_exact,
        })
    }

    /// Pass 4: union-find dump by dump (the curve), then each document's status and the
    /// per-dump and cluster-size counts.
    fn join_dumps(&self, edges: &Edges, summary: &mut ClusterSummary) -> Result<(UnionFind, Vec<Status>)> {
        let n = self.n;
        let mut per_dump_docs = vec![0u64; self.dumps.len()];
        for &d in &self.dump_of {
            per_dump_docs[d as usize] += 1;
        }
        let dump_index = |d: &str| self.dumps.iter().position(|x| x == d).map(|i| i as u16);
        let mut uf = UnionFind::new(n);
        let last_prev = self.prev_dumps.last().and_then(|d| dump_index(d));
        // Survivors among the earlier runs' documents before this run's dumps join, marked in
        // `size` (not yet in use) so the check costs no memory of its own.
        let mut size = vec![0u32; n];
        let (mut docs, mut merged) = (0u64, 0u64);
        for (k, path) in edges.files.iter().enumerate() {
            docs += per_dump_docs[k];
            let f = File::open(path).map_err(|e| PipelineError::io(path, e))?;
            let mut r = BufReader::with_capacity(1 << 20, f);
            let mut rec = [0u8; 8];
            loop {
                match r.read_exact(&mut rec) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(PipelineError::io(path, e)),
                }
                let a = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
                let b = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
                merged += u64::from(uf.union(a, b));
            }
            drop(r);
            let _ = fs::remove_file(path);
            summary.curve.push(CurvePoint::new(k + 1, &self.dumps[k], docs, merged));
            if Some(k as u16) == last_prev {
                for o in 0..n as u32 {
                    if self.dump_of[o as usize] <= k as u16 && uf.find(o) == o {
                        size[o as usize] = 1;
                    }
                }
            }
        }
        summary.bridged_previous_survivors = (0..n as u32)
            .filter(|&o| size[o as usize] == 1 && uf.find(o) != o)
            .count() as u64;
        size.fill(0);
        let mut status = vec![Status::Keep; n];
        let prev_set: BTreeSet<u16> = self.prev_dumps.iter().filter_map(|d| dump_index(d)).collect();
        for o in 0..n as u32 {
            let root = uf.find(o);
            size[root as usize] += 1;
            let s = if root == o {
                Status::Keep
            } else if edges.is_exact[o as usize] {
                Status::Exact
            } else {
                Status::Near
            };
            status[o as usize] = s;
            let d = self.dump_of[o as usize];
            summary.count(&self.dumps[d as usize], prev_set.contains(&d), s, 1);
        }
        for &s in &size {
            if s > 0 {
                *summary.cluster_sizes.entry(u64::from(s)).or_default() += 1;
            }
        }
        summary.add_totals();
        Ok((uf, status))
    }

    /// Pass 5: hashes of the lines found in more than `max_docs` survivors, sorted.
    fn recurring_lines(
        &self,
        status: &[Status],
        summary: &mut ClusterSummary,
        run_stats: &mut ClusterRunStats,
    ) -> Result<Vec<u64>> {
        let mut recurring: Vec<u64> = Vec::new();
        if !self.cfg.lines.enabled {
            return Ok(recurring);
        }
        let mut lines = ExternalSorter::<u64>::new(&self.tmp, "lines", self.budget);
        for (f, t) in self.tables.iter().enumerate() {
            let mut row = 0usize;
            scan(&t.path, &["lines"], |b| {
                let ls = bin_col(b, &t.path, "lines")?;
                for i in 0..b.num_rows() {
                    let o = ordinal(&self.ord_of[f], row, &t.path)?;
                    row += 1;
                    if status[o as usize] == Status::Keep {
                        for h in le_words(ls.value(i)) {
                            lines.push(h)?;
                        }
                    }
                }
                Ok(())
            })?;
        }
        let lines = lines.finish()?;
        run_stats.spilled_bytes += lines.spilled_bytes();
        let max = self.cfg.lines.max_docs as usize;
        let mut distinct = 0u64;
        lines.for_each_group(
            |h| *h,
            |g| {
                distinct += 1;
                if g.len() > max {
                    recurring.push(g[0]);
                }
                Ok(())
            },
        )?;
        summary.distinct_lines = distinct;
        summary.recurring_lines = recurring.len() as u64;
        Ok(recurring)
    }

    /// One decisions file per own shard, in its row order: status, survivor id hash,
    /// survivor dump.
    fn write_decisions(&self, paths: &IndexPaths, uf: &mut UnionFind, status: &[Status]) -> Result<()> {
        for (f, t) in self.tables.iter().enumerate() {
            let Some(shard) = t.shard else { continue };
            let mut w = DecisionsWriter::create(&paths.cluster, shard, t.rows as u64)?;
            for &o in &self.ord_of[f] {
                let root = uf.find(o);
                w.push(Decision {
                    status: status[o as usize],
                    cluster: self.id_hash[root as usize],
                    survivor_dump: self.dump_of[root as usize],
                })?;
            }
            w.finish()?;
        }
        Ok(())
    }
}

/// Pass 3's output: one edge file per dump, and which documents have an exact twin
/// ranked before them.
struct Edges {
    files: Vec<PathBuf>,
    is_exact: Vec<bool>,
}

/// Exact-Jaccard check of band candidates against their bucket's earliest member.
struct Verifier {
    store: ShingleStore,
    threshold: f64,
    /// Pairs already verified (a pair shares up to `bands` buckets); cleared when large.
    seen: std::collections::HashMap<(u32, u32), bool>,
    rejected: u64,
    a: Vec<u32>,
    b: Vec<u32>,
}

impl Verifier {
    fn new(store: ShingleStore, threshold: f64) -> Self {
        Self {
            store,
            threshold,
            seen: std::collections::HashMap::new(),
            rejected: 0,
            a: Vec::new(),
            b: Vec::new(),
        }
    }

    /// Keeps in `members` the group's earliest member (by dump) and those similar enough
    /// to it: any prefix of dumps that holds a member holds that one too, so the curve
    /// stays exact.
    fn keep_similar(&mut self, members: &mut Vec<u32>, dump_of: &[u16]) -> Result<()> {
        let center = members
            .iter()
            .copied()
            .min_by_key(|&o| (dump_of[o as usize], o))
            .unwrap_or(members[0]);
        self.store.read(center, &mut self.a)?;
        let mut kept = vec![center];
        for &m in members.iter().filter(|&&m| m != center) {
            if self.seen.len() > 1 << 20 {
                self.seen.clear();
            }
            let ok = match self.seen.get(&(center, m)) {
                Some(&ok) => ok,
                None => {
                    self.store.read(m, &mut self.b)?;
                    let ok = jaccard(&self.a, &self.b) >= self.threshold;
                    self.seen.insert((center, m), ok);
                    ok
                }
            };
            if ok {
                kept.push(m);
            } else {
                self.rejected += 1;
            }
        }
        *members = kept;
        Ok(())
    }
}

/// The ordinal of `row` of a table, or an error if the table grew since it was counted.
fn ordinal(ords: &[u32], row: usize, path: &Path) -> Result<u32> {
    ords.get(row).copied().ok_or_else(|| PipelineError::BadFile {
        path: path.to_owned(),
        offset: 0,
        what: format!(
            "signature table changed while dedup read it (row {row} of {})",
            ords.len()
        ),
        fix: "rerun `loam dedup --phase cluster --force`".into(),
    })
}

fn bad_col(path: &Path, name: &str) -> PipelineError {
    PipelineError::BadFile {
        path: path.to_owned(),
        offset: 0,
        what: format!("signature column `{name}` has the wrong type"),
        fix: "rerun `loam dedup --phase signatures --force`".into(),
    }
}
