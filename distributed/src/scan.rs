//! The signature tables as DataFusion relations: one leaf node reads a list of tables and
//! emits one relation of them (dumps, documents, band records, exact-hash records or line
//! records); the distributed planner splits its tables across tasks.
//!
//! A document's `node` is `dump << 48 | table << 32 | row`: unique, and ordered by dump
//! first, so the smallest node of a group lies in its earliest dump. Its `okey` is
//! `rank (u16 BE) ‖ id, order-preserving escaped ‖ table (u32 BE) ‖ row (u32 BE)`: bytes
//! that sort like the local engine's `(dump rank, id, table, row)`, the survivor order.
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, AsArray, BinaryBuilder, RecordBatch, StringBuilder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::{RecordBatchReceiverStreamBuilder, RecordBatchStreamAdapter};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedLeafExec, ScaleUpLeafNodeEvent,
    ScaleUpLeafNodeEventResponse,
};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// Which relation a scan emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// `(f, dump)`, distinct within a batch: the dumps each table holds.
    Dumps,
    /// One row per document: `(node, f, row, dump, okey, idh)`.
    Docs,
    /// One row per LSH band key: `(key, node)`.
    Bands,
    /// One row per document: `(h1, h2, node, okey)`, the xxh3-128 of its normalised text.
    Exact,
    /// One row per distinct line of a document: `(h, node)`.
    Lines,
}

impl Kind {
    pub fn schema(self) -> SchemaRef {
        let u64f = |n: &str| Field::new(n, DataType::UInt64, false);
        let u32f = |n: &str| Field::new(n, DataType::UInt32, false);
        let fields = match self {
            Kind::Dumps => vec![u32f("f"), Field::new("dump", DataType::Utf8, false)],
            Kind::Docs => vec![
                u64f("node"),
                u32f("f"),
                u32f("row"),
                u32f("dump"),
                Field::new("okey", DataType::Binary, false),
                u64f("idh"),
            ],
            Kind::Bands => vec![u64f("key"), u64f("node")],
            Kind::Exact => vec![
                u64f("h1"),
                u64f("h2"),
                u64f("node"),
                Field::new("okey", DataType::Binary, false),
            ],
            Kind::Lines => vec![u64f("h"), u64f("node")],
        };
        Arc::new(Schema::new(fields))
    }

    /// Signature-table columns the relation is made from.
    fn columns(self) -> &'static [&'static str] {
        match self {
            Kind::Dumps => &["dump"],
            Kind::Docs => &["id", "dump"],
            Kind::Bands => &["dump", "bands"],
            Kind::Exact => &["id", "dump", "exact"],
            Kind::Lines => &["dump", "lines"],
        }
    }
}

/// What a scan reads: the tables (with their index `f` in the job's table order), the
/// run's dumps in chronological order, and the keep rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanSpec {
    pub kind: Kind,
    pub dumps: Vec<String>,
    /// `keep = "latest"`: the survivor rank counts dumps from the newest.
    pub latest: bool,
    pub tables: Vec<(u32, PathBuf)>,
}

/// The order-preserving key of a document (see the module doc).
pub fn order_key(rank: u16, id: &str, f: u32, row: u32, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&rank.to_be_bytes());
    for &b in id.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&f.to_be_bytes());
    out.extend_from_slice(&row.to_be_bytes());
}

pub fn node(dump: u32, f: u32, row: u32) -> u64 {
    (u64::from(dump) << 48) | (u64::from(f) << 32) | u64::from(row)
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Reads one signature table into batches of `spec.kind`, passing each to `emit`.
pub fn read_table(spec: &ScanSpec, f: u32, path: &Path, mut emit: impl FnMut(RecordBatch) -> Result<()>) -> Result<()> {
    let schema = spec.kind.schema();
    let dump_index: HashMap<&str, u32> = spec
        .dumps
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i as u32))
        .collect();
    let n_dumps = spec.dumps.len() as u32;
    let mut row = 0u32;
    let mut key = Vec::new();
    let fix = "rerun `loam dedup --phase signatures --force` for its shard";
    let mut failed: Option<DataFusionError> = None;
    let res = loam_pipeline::schema::scan_columns(path, spec.kind.columns(), fix, |b| {
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| format!("signature table without a `{name}` column"))
        };
        let out = (|| -> std::result::Result<RecordBatch, String> {
            let dumps = col("dump")?.as_string_opt::<i32>().ok_or("`dump` is not text")?;
            let dump_of = |i: usize| -> std::result::Result<u32, String> {
                if spec.kind == Kind::Dumps {
                    return Ok(0);
                }
                dump_index
                    .get(dumps.value(i))
                    .copied()
                    .ok_or_else(|| format!("dump {:?} appeared after the dumps pass; rerun", dumps.value(i)))
            };
            let rows = b.num_rows();
            let first = row;
            let cols: Vec<ArrayRef> = match spec.kind {
                Kind::Dumps => {
                    let mut seen: Vec<&str> = (0..rows).map(|i| dumps.value(i)).collect();
                    seen.sort_unstable();
                    seen.dedup();
                    let mut fs = UInt32Builder::new();
                    let mut ds = StringBuilder::new();
                    for d in seen {
                        fs.append_value(f);
                        ds.append_value(d);
                    }
                    vec![Arc::new(fs.finish()), Arc::new(ds.finish())]
                }
                Kind::Docs => {
                    let ids = col("id")?.as_string_opt::<i32>().ok_or("`id` is not text")?;
                    let (mut nodes, mut fs, mut rs, mut ds) = (
                        UInt64Builder::new(),
                        UInt32Builder::new(),
                        UInt32Builder::new(),
                        UInt32Builder::new(),
                    );
                    let (mut okeys, mut idhs) = (BinaryBuilder::new(), UInt64Builder::new());
                    for i in 0..rows {
                        let r = first + i as u32;
                        let d = dump_of(i)?;
                        let rank = if spec.latest { n_dumps - 1 - d } else { d };
                        order_key(rank as u16, ids.value(i), f, r, &mut key);
                        nodes.append_value(node(d, f, r));
                        fs.append_value(f);
                        rs.append_value(r);
                        ds.append_value(d);
                        okeys.append_value(&key);
                        idhs.append_value(xxh3_64(ids.value(i).as_bytes()));
                    }
                    vec![
                        Arc::new(nodes.finish()),
                        Arc::new(fs.finish()),
                        Arc::new(rs.finish()),
                        Arc::new(ds.finish()),
                        Arc::new(okeys.finish()),
                        Arc::new(idhs.finish()),
                    ]
                }
                Kind::Bands | Kind::Lines => {
                    let name = if spec.kind == Kind::Bands { "bands" } else { "lines" };
                    let words = col(name)?
                        .as_binary_opt::<i32>()
                        .ok_or_else(|| format!("`{name}` is not binary"))?;
                    let (mut keys, mut nodes) = (UInt64Builder::new(), UInt64Builder::new());
                    for i in 0..rows {
                        let n = node(dump_of(i)?, f, first + i as u32);
                        for w in words.value(i).chunks_exact(8) {
                            let mut x = [0u8; 8];
                            x.copy_from_slice(w);
                            keys.append_value(u64::from_le_bytes(x));
                            nodes.append_value(n);
                        }
                    }
                    vec![Arc::new(keys.finish()), Arc::new(nodes.finish())]
                }
                Kind::Exact => {
                    let ids = col("id")?.as_string_opt::<i32>().ok_or("`id` is not text")?;
                    let ex = col("exact")?.as_binary_opt::<i32>().ok_or("`exact` is not binary")?;
                    let (mut h1, mut h2, mut nodes) =
                        (UInt64Builder::new(), UInt64Builder::new(), UInt64Builder::new());
                    let mut okeys = BinaryBuilder::new();
                    for i in 0..rows {
                        let v = ex.value(i);
                        // The local engine skips a hash of the wrong width the same way.
                        if v.len() != 16 {
                            continue;
                        }
                        let r = first + i as u32;
                        let d = dump_of(i)?;
                        let rank = if spec.latest { n_dumps - 1 - d } else { d };
                        order_key(rank as u16, ids.value(i), f, r, &mut key);
                        let (mut lo, mut hi) = ([0u8; 8], [0u8; 8]);
                        lo.copy_from_slice(&v[..8]);
                        hi.copy_from_slice(&v[8..]);
                        h1.append_value(u64::from_le_bytes(hi));
                        h2.append_value(u64::from_le_bytes(lo));
                        nodes.append_value(node(d, f, r));
                        okeys.append_value(&key);
                    }
                    vec![
                        Arc::new(h1.finish()),
                        Arc::new(h2.finish()),
                        Arc::new(nodes.finish()),
                        Arc::new(okeys.finish()),
                    ]
                }
            };
            row = row
                .checked_add(rows as u32)
                .ok_or("more than 4294967295 rows in one signature table")?;
            RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())
        })();
        match out {
            Ok(batch) => {
                if let Err(e) = emit(batch) {
                    failed = Some(e);
                    // Stops the read; the error above is the one reported.
                    return Err(loam_pipeline::PipelineError::Config("stopped".into()));
                }
                Ok(())
            }
            Err(what) => Err(loam_pipeline::PipelineError::BadFile {
                path: path.to_owned(),
                offset: 0,
                what,
                fix: fix.into(),
            }),
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    res.map_err(external)
}

/// The leaf node: partition `i` reads `spec.tables[i]` (empty when there is none).
#[derive(Debug)]
pub struct SigScanExec {
    pub(crate) spec: Arc<ScanSpec>,
    pub(crate) partitions: usize,
    pub(crate) projection: Option<Vec<usize>>,
    props: Arc<PlanProperties>,
}

impl SigScanExec {
    pub fn new(spec: Arc<ScanSpec>, partitions: usize, projection: Option<Vec<usize>>) -> Result<Self> {
        let full = spec.kind.schema();
        let schema = match &projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full,
        };
        let props = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(partitions.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            spec,
            partitions: partitions.max(1),
            projection,
            props,
        })
    }
}

impl DisplayAs for SigScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "LoamSignatureScanExec: kind={:?}, tables=[", self.spec.kind)?;
        for (i, (t, p)) in self.spec.tables.iter().enumerate() {
            let name = p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            write!(f, "{}{t}:{name}", if i > 0 { ", " } else { "" })?;
        }
        write!(f, "]")
    }
}

impl ExecutionPlan for SigScanExec {
    fn name(&self) -> &str {
        "LoamSignatureScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, _: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.schema();
        let Some((f, path)) = self.spec.tables.get(partition).cloned() else {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        };
        let mut builder = RecordBatchReceiverStreamBuilder::new(schema, 2);
        let tx = builder.tx();
        let spec = Arc::clone(&self.spec);
        let projection = self.projection.clone();
        builder.spawn_blocking(move || {
            read_table(&spec, f, &path, |batch| {
                let batch = match &projection {
                    Some(p) => batch.project(p)?,
                    None => batch,
                };
                // A closed channel means the consumer stopped (a LIMIT, an error elsewhere).
                tx.blocking_send(Ok(batch))
                    .map_err(|_| DataFusionError::Execution("scan output closed".into()))
            })
        });
        Ok(builder.build())
    }
}

/// A signature relation registered as a table.
#[derive(Debug)]
pub struct SigTable {
    pub spec: Arc<ScanSpec>,
}

#[async_trait]
impl TableProvider for SigTable {
    fn schema(&self) -> SchemaRef {
        self.spec.kind.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(SigScanExec::new(
            Arc::clone(&self.spec),
            self.spec.tables.len(),
            projection.cloned(),
        )?))
    }
}

/// One task per table, at most (the planner caps it at the number of workers).
pub fn desired_tasks(ev: DesiredTaskCountEvent) -> Option<Result<DesiredTaskCountEventResponse>> {
    let scan = ev.plan.downcast_ref::<SigScanExec>()?;
    Some(Ok(DesiredTaskCountEventResponse::desired(
        scan.spec.tables.len().max(1),
    )))
}

/// Deals the tables out to the tasks round-robin, one variant of the node per task.
pub fn scale_up(ev: ScaleUpLeafNodeEvent) -> Option<Result<ScaleUpLeafNodeEventResponse>> {
    let scan = ev.plan.downcast_ref::<SigScanExec>()?;
    let tasks = ev.task_count.max(1);
    let per_task = scan.spec.tables.len().div_ceil(tasks).max(1);
    let variants: Result<Vec<Arc<dyn ExecutionPlan>>> = (0..tasks)
        .map(|t| {
            let spec = ScanSpec {
                tables: scan.spec.tables.iter().skip(t).step_by(tasks).cloned().collect(),
                ..(*scan.spec).clone()
            };
            Ok(
                Arc::new(SigScanExec::new(Arc::new(spec), per_task, scan.projection.clone())?)
                    as Arc<dyn ExecutionPlan>,
            )
        })
        .collect();
    Some(variants.and_then(|v| {
        DistributedLeafExec::try_new(Arc::clone(ev.plan), v).map(|l| ScaleUpLeafNodeEventResponse::new(Arc::new(l)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_like_rank_id_table_row() {
        let cases = [
            (0u16, "a", 0u32, 5u32),
            (0, "a", 1, 0),
            (0, "a\u{0}", 0, 0),
            (0, "a\u{0}b", 0, 0),
            (0, "ab", 0, 0),
            (0, "b", 0, 0),
            (1, "", 0, 0),
            (1, "a", 0, 0),
        ];
        let mut sorted = cases.to_vec();
        sorted.sort();
        let mut by_key = cases.to_vec();
        by_key.sort_by_key(|&(r, id, f, row)| {
            let mut k = Vec::new();
            order_key(r, id, f, row, &mut k);
            k
        });
        assert_eq!(by_key, sorted);
    }

    #[test]
    fn nodes_order_by_dump_first() {
        assert!(node(0, 65535, u32::MAX) < node(1, 0, 0));
        assert_eq!(node(65534, 0, 0) >> 48, 65534);
    }
}
