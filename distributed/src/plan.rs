//! The cluster step as a sequence of DataFusion queries (module doc of the crate):
//! dumps → candidate edges → connected components by label propagation → survivors,
//! exact twins, decisions → per-dump counts, cluster sizes, the curve, recurring lines.
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use loam_pipeline::dedup::cluster::{
    merge_dumps, ClusterJob, ClusterRunStats, ClusterSummary, CurvePoint, DecisionsWriter, Status,
};
use loam_pipeline::dedup::{DedupConfig, KeepRule};

use crate::engine::{sum_u64, Engine};
use crate::scan::{Kind, ScanSpec, SigTable};
use crate::sink::{ShardOut, SinkTable, Target};
use crate::Error;

/// Label-propagation rounds before the step gives up (each round at least doubles the
/// distance labels travel; dedup graphs converge in a handful).
const MAX_ROUNDS: u32 = 64;

/// The values of column `col` of `batches` as u64 (any integer type).
fn column_u64(batches: &[RecordBatch], col: usize) -> Result<Vec<u64>, Error> {
    let mut out = Vec::new();
    for b in batches {
        let c = cast(b.column(col), &DataType::UInt64).map_err(|e| Error::engine("reading a result", e.into()))?;
        let c = c.as_primitive::<UInt64Type>();
        out.extend((0..c.len()).filter(|&i| c.is_valid(i)).map(|i| c.value(i)));
    }
    Ok(out)
}

/// Rows of each table, from the Parquet footers.
fn table_rows(job: &ClusterJob) -> Result<Vec<u64>, Error> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    job.tables
        .iter()
        .map(|t| {
            let f = fs::File::open(&t.path).map_err(|e| Error::Io(format!("opening {}", t.path.display()), e))?;
            let r = SerializedFileReader::new(f).map_err(|e| {
                Error::Pipeline(loam_pipeline::PipelineError::Parquet {
                    path: t.path.clone(),
                    source: e,
                })
            })?;
            Ok(r.metadata().file_metadata().num_rows().max(0) as u64)
        })
        .collect()
}

pub struct Outcome {
    pub summary: ClusterSummary,
    pub recurring: Vec<u64>,
    pub stats: ClusterRunStats,
}

/// Runs every pass of the step on `e`'s cluster; the decisions files are written by the
/// workers, the rest is returned for [`ClusterJob::commit`].
pub async fn cluster(e: &mut Engine, job: &ClusterJob, cfg: &DedupConfig, workers: usize) -> Result<Outcome, Error> {
    let tables: Vec<(u32, PathBuf)> = job
        .tables
        .iter()
        .enumerate()
        .map(|(f, t)| (f as u32, t.path.clone()))
        .collect();
    if tables.len() > usize::from(u16::MAX) {
        return Err(Error::Config(format!(
            "{} signature tables: the distributed engine takes at most 65535 (fewer shards, or merge \
             earlier indexes)",
            tables.len()
        )));
    }
    let n_prev = job.tables.iter().filter(|t| t.shard.is_none()).count();
    let rows = table_rows(job)?;
    if let Some(i) = rows.iter().position(|&r| r > u64::from(u32::MAX)) {
        return Err(Error::Config(format!(
            "{}: more than 4294967295 documents in one shard; use more shards",
            job.tables[i].path.display()
        )));
    }
    let n: u64 = rows.iter().sum();
    let spec = |kind, dumps: &[String]| ScanSpec {
        kind,
        dumps: dumps.to_vec(),
        latest: cfg.keep == KeepRule::Latest,
        tables: tables.clone(),
    };
    let register = |e: &mut Engine, name: &str, s: ScanSpec| {
        let _ = e.ctx.deregister_table(name);
        e.ctx
            .register_table(name, Arc::new(SigTable { spec: Arc::new(s) }))
            .map(|_| ())
            .map_err(|err| Error::engine(&format!("registering `{name}`"), err))
    };

    // The dumps: which tables hold which, so earlier indexes' dumps come first.
    register(e, "dumprec", spec(Kind::Dumps, &[]))?;
    let found = e
        .collect("dumps", "SELECT f, dump FROM dumprec GROUP BY f, dump ORDER BY f, dump")
        .await?;
    let (mut prev_dumps, mut own_dumps) = (BTreeSet::new(), BTreeSet::new());
    for b in &found {
        let f = cast(b.column(0), &DataType::UInt64).map_err(|err| Error::engine("reading dumps", err.into()))?;
        let f = f.as_primitive::<UInt64Type>();
        let d = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            let set = if (f.value(i) as usize) < n_prev {
                &mut prev_dumps
            } else {
                &mut own_dumps
            };
            set.insert(d.value(i).to_owned());
        }
    }
    let dumps = merge_dumps(&prev_dumps, &own_dumps)?;
    for (name, kind) in [
        ("docs", Kind::Docs),
        ("bandrec", Kind::Bands),
        ("exactrec", Kind::Exact),
        ("linerec", Kind::Lines),
    ] {
        register(e, name, spec(kind, &dumps))?;
    }

    // Candidate edges: every member of a band bucket or exact group to the group's smallest
    // node (its earliest dump). A star joins the members of any prefix of dumps just as the
    // local engine's dump-ordered chain does, so both give the same components and curve.
    // The workers sort each group's rows (a sort spills) and stream the stars out, where a
    // GROUP BY + join would hold a hash table of every key.
    let pair = Arc::new(Schema::new(vec![
        Field::new("a", DataType::UInt64, false),
        Field::new("b", DataType::UInt64, false),
    ]));
    let stars = |dir: &PathBuf, name: &str, group: &[&str], order: &str| Target::Stars {
        dir: dir.clone(),
        name: name.into(),
        group: group.iter().map(|g| (*g).to_owned()).collect(),
        order: order.into(),
    };
    let raw = e.folder("edges_raw")?;
    let mut candidate_edges = 0;
    if cfg.minhash.enabled {
        let sql = "SELECT key, node FROM bandrec";
        candidate_edges += e
            .write("band_stars", sql, stars(&raw, "band", &["key"], "node"))
            .await?;
    }
    if cfg.exact {
        let sql = "SELECT h1, h2, node FROM exactrec";
        candidate_edges += e
            .write("exact_stars", sql, stars(&raw, "exact", &["h1", "h2"], "node"))
            .await?;
    }
    e.register("edges_raw", &raw, Arc::clone(&pair)).await?;
    e.materialize("edges", "SELECT DISTINCT a, b FROM edges_raw").await?;
    let (labels, rounds) = components(e, "edges", "labels").await?;

    // Survivors: the member of each component first in the survivor order.
    e.materialize(
        "surv",
        &format!(
            "WITH ck AS (SELECT l.node, l.label, d.okey FROM {labels} l JOIN docs d ON l.node = d.node), \
             s AS (SELECT label, MIN(okey) AS sok FROM ck GROUP BY label), \
             si AS (SELECT s.label, s.sok, d.idh AS sidh, d.dump AS sdump FROM s JOIN docs d ON s.sok = d.okey) \
             SELECT ck.node, si.sok, si.sidh, si.sdump FROM ck JOIN si ON ck.label = si.label"
        ),
    )
    .await?;
    // Exact twins: every member of an exact-hash group but the first in survivor order
    // (the `a` of a star ordered by okey).
    let twins = e.folder("exdup")?;
    if cfg.exact {
        let sql = "SELECT h1, h2, node, okey FROM exactrec";
        e.write("exact_twins", sql, stars(&twins, "twins", &["h1", "h2"], "okey"))
            .await?;
    }
    e.register("exdup_pairs", &twins, pair).await?;
    e.materialize("exdup", "SELECT a AS node FROM exdup_pairs").await?;
    let (keep, exact, near) = (Status::Keep as u8, Status::Exact as u8, Status::Near as u8);
    e.materialize(
        "decided",
        &format!(
            "SELECT d.node, d.f, d.row, d.dump, \
             arrow_cast(CASE WHEN s.sok IS NULL OR s.sok = d.okey THEN {keep} \
                  WHEN x.node IS NOT NULL THEN {exact} ELSE {near} END, 'UInt8') AS status, \
             COALESCE(s.sidh, d.idh) AS sidh, COALESCE(s.sdump, d.dump) AS sdump \
             FROM exdup x RIGHT JOIN (surv s RIGHT JOIN docs d ON s.node = d.node) ON x.node = d.node"
        ),
    )
    .await?;

    // The decisions files, written by the workers shard by shard.
    let shards: Vec<ShardOut> = job
        .tables
        .iter()
        .enumerate()
        .filter_map(|(f, t)| {
            t.shard.map(|s| ShardOut {
                f: f as u32,
                index: s.index(),
                of: s.of(),
                rows: rows[f],
            })
        })
        .collect();
    let decisions_of = |s: &ShardOut| -> Result<PathBuf, Error> {
        let shard = loam_pipeline::stage::ShardId::new(s.index, s.of)?;
        Ok(job.paths.cluster.join(format!("{}.decisions", shard.stem())))
    };
    for s in &shards {
        let p = decisions_of(s)?;
        if p.exists() {
            fs::remove_file(&p).map_err(|err| Error::Io(format!("removing {}", p.display()), err))?;
        }
    }
    let df = e
        .ctx
        .sql(&format!(
            "SELECT f, row, status, sidh, sdump FROM decided WHERE f >= {n_prev}"
        ))
        .await
        .map_err(|err| Error::engine("query `decisions`", err))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let written = e
        .insert(
            "decisions",
            df,
            SinkTable {
                schema,
                target: Target::Decisions {
                    cluster_dir: job.paths.cluster.clone(),
                    shards: shards.clone(),
                },
            },
        )
        .await?;
    for s in &shards {
        let shard = loam_pipeline::stage::ShardId::new(s.index, s.of)?;
        if s.rows == 0 {
            DecisionsWriter::create(&job.paths.cluster, shard, 0)?.finish()?;
        } else if !decisions_of(s)?.exists() {
            return Err(Error::Config(format!(
                "no decisions came back for shard {} of {}; rerun `loam dedup --phase cluster --force`",
                s.index, s.of
            )));
        }
    }
    let own_rows: u64 = shards.iter().map(|s| s.rows).sum();
    if written != own_rows {
        return Err(Error::Config(format!(
            "{written} decisions written for {own_rows} documents; rerun `loam dedup --phase cluster --force`"
        )));
    }

    // Counts for the summary, as the local engine keeps them.
    let mut summary = ClusterSummary {
        fingerprint: job.fingerprint.clone(),
        dumps: dumps.clone(),
        candidate_edges,
        ..Default::default()
    };
    let counts = e
        .collect(
            "per_dump",
            "SELECT dump, status, COUNT(*) AS n FROM decided GROUP BY dump, status",
        )
        .await?;
    let (cd, cs, cn) = (
        column_u64(&counts, 0)?,
        column_u64(&counts, 1)?,
        column_u64(&counts, 2)?,
    );
    let prev_set: BTreeSet<&String> = prev_dumps.iter().collect();
    let mut per_dump_docs = vec![0u64; dumps.len()];
    for ((d, s), k) in cd.into_iter().zip(cs).zip(cn) {
        let name = dumps
            .get(d as usize)
            .ok_or_else(|| Error::Config(format!("dump index {d} out of range")))?;
        per_dump_docs[d as usize] += k;
        let status = Status::from_u8(s as u8).ok_or_else(|| Error::Config(format!("status {s} out of range")))?;
        summary.count(name, prev_set.contains(name), status, k);
    }
    summary.add_totals();
    let sizes = e
        .collect(
            "cluster_sizes",
            &format!(
                "SELECT size, COUNT(*) AS n FROM (SELECT label, COUNT(*) AS size FROM {labels} GROUP BY label) \
                 GROUP BY size"
            ),
        )
        .await?;
    let mut in_clusters = 0u64;
    for (size, k) in column_u64(&sizes, 0)?.into_iter().zip(column_u64(&sizes, 1)?) {
        in_clusters += size * k;
        *summary.cluster_sizes.entry(size).or_default() += k;
    }
    if n > in_clusters {
        *summary.cluster_sizes.entry(1).or_default() += n - in_clusters;
    }

    // The curve: per component, the dumps at which its parts merge, counted on the workers
    // one component at a time.
    let merges_dir = job.tmp.join("merges");
    fs::create_dir_all(&merges_dir).map_err(|err| Error::Io(format!("creating {}", merges_dir.display()), err))?;
    let df = e
        .ctx
        .sql(&format!(
            "SELECT l.label, e.a, e.b FROM edges e JOIN {labels} l ON e.a = l.node"
        ))
        .await
        .map_err(|err| Error::engine("query `merges`", err))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let target = Target::Merges {
        dir: merges_dir.clone(),
    };
    e.insert("merges", df, SinkTable { schema, target }).await?;
    let hist = Arc::new(Schema::new(vec![
        Field::new("w", DataType::UInt32, false),
        Field::new("n", DataType::UInt64, false),
    ]));
    e.register("merge_counts", &merges_dir, hist).await?;
    let merges = e
        .collect("curve", "SELECT w, SUM(n) AS n FROM merge_counts GROUP BY w")
        .await?;
    let mut merges_at = vec![0u64; dumps.len()];
    for (w, k) in column_u64(&merges, 0)?.into_iter().zip(column_u64(&merges, 1)?) {
        if let Some(m) = merges_at.get_mut(w as usize) {
            *m += k;
        }
    }
    let (mut docs, mut removed) = (0u64, 0u64);
    for (k, d) in dumps.iter().enumerate() {
        docs += per_dump_docs[k];
        removed += merges_at[k];
        summary.curve.push(CurvePoint::new(k + 1, d, docs, removed));
    }

    // Earlier runs' survivors that a new document now joins to an earlier one.
    let mut rounds_total = rounds;
    if let Some(last_prev) = prev_dumps.last().and_then(|d| dumps.iter().position(|x| x == d)) {
        let bound = ((last_prev as u64) + 1) << 48;
        e.materialize(
            "edges_prev",
            &format!("SELECT a, b FROM edges WHERE a < arrow_cast({bound}, 'UInt64')"),
        )
        .await?;
        let (prev_labels, r) = components(e, "edges_prev", "plabels").await?;
        rounds_total += r;
        let bridged = e
            .collect(
                "bridged",
                &format!(
                    "WITH ck AS (SELECT l.node, l.label, d.okey FROM {prev_labels} l JOIN docs d ON l.node = d.node), \
                     s AS (SELECT label, MIN(okey) AS sok FROM ck GROUP BY label), \
                     notroot AS (SELECT ck.node FROM ck JOIN s ON ck.label = s.label WHERE ck.okey <> s.sok) \
                     SELECT COUNT(*) AS n FROM decided d LEFT JOIN notroot r ON d.node = r.node \
                     WHERE d.dump <= {last_prev} AND r.node IS NULL AND d.status <> {keep}"
                ),
            )
            .await?;
        summary.bridged_previous_survivors = sum_u64(&bridged, 0);
    }

    // Lines in more than `max_docs` surviving documents.
    let mut recurring = Vec::new();
    if cfg.lines.enabled {
        summary.distinct_lines = e
            .materialize(
                "linecounts",
                &format!(
                    "SELECT l.h, COUNT(*) AS c FROM linerec l JOIN decided d ON l.node = d.node \
                     WHERE d.status = {keep} GROUP BY l.h"
                ),
            )
            .await?;
        let found = e
            .collect(
                "recurring",
                &format!("SELECT h FROM linecounts WHERE c > {} ORDER BY h", cfg.lines.max_docs),
            )
            .await?;
        recurring = column_u64(&found, 0)?;
        summary.recurring_lines = recurring.len() as u64;
    }

    let stats = ClusterRunStats {
        engine: "distributed".into(),
        documents: n,
        spilled_bytes: e.spilled_bytes,
        workers,
        iterations: rounds_total,
        shuffled_bytes: e.shuffled_bytes,
        ..Default::default()
    };
    Ok(Outcome {
        summary,
        recurring,
        stats,
    })
}

/// Connected components of the undirected graph `edges(a, b)` by min-label propagation with
/// pointer jumping: each round a node takes the smallest label among its own and its
/// neighbours', then the label of that label. Labels only fall, so the round in which
/// none changes is the fixpoint: every node labelled with its component's smallest node.
/// Returns the final labels table `(node, label)` and the number of rounds.
async fn components(e: &mut Engine, edges: &str, prefix: &str) -> Result<(String, u32), Error> {
    let mut labels = format!("{prefix}0");
    e.materialize(
        &labels,
        &format!(
            "SELECT node, MIN(nb) AS label FROM ( \
             SELECT a AS node, b AS nb FROM {edges} UNION ALL SELECT b AS node, a AS nb FROM {edges} \
             UNION ALL SELECT a AS node, a AS nb FROM {edges} UNION ALL SELECT b AS node, b AS nb FROM {edges}) \
             GROUP BY node"
        ),
    )
    .await?;
    for round in 1..=MAX_ROUNDS {
        let next = format!("{prefix}{round}");
        e.materialize(
            &next,
            &format!(
                "WITH n AS ( \
                 SELECT e.a AS node, l.label AS cand, arrow_cast(NULL, 'UInt64') AS own \
                   FROM {edges} e JOIN {labels} l ON e.b = l.node \
                 UNION ALL SELECT e.b AS node, l.label AS cand, arrow_cast(NULL, 'UInt64') AS own \
                   FROM {edges} e JOIN {labels} l ON e.a = l.node \
                 UNION ALL SELECT node, label AS cand, label AS own FROM {labels}), \
                 c AS (SELECT node, MIN(cand) AS c, MIN(own) AS old FROM n GROUP BY node) \
                 SELECT x.node, y.c AS label, x.old FROM c x JOIN c y ON x.c = y.node"
            ),
        )
        .await?;
        let changed = e
            .collect(
                &format!("changed{round}"),
                &format!("SELECT COUNT(*) AS n FROM {next} WHERE label <> old"),
            )
            .await?;
        let changed = sum_u64(&changed, 0);
        eprintln!("dedup cluster (distributed): {prefix} round {round}: {changed} labels changed");
        labels = next;
        if changed == 0 {
            return Ok((labels, round));
        }
    }
    Err(Error::Config(format!(
        "connected components did not converge in {MAX_ROUNDS} rounds; report this with the run's \
         dedup/_index/cluster/_stats"
    )))
}
