//! Where a query's rows go when they stay on the workers: `INSERT INTO` a write-only table
//! whose plan writes each partition where it runs — Parquet files of an intermediate
//! relation, or the per-shard `.decisions` files `apply` reads — and emits only row counts
//! to the coordinator. The coordinator never holds a relation of the size of the corpus.
use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, RecordBatch, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type, UInt64Type, UInt8Type};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexRequirement, OrderingRequirements, Partitioning, PhysicalExpr, PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties};
use datafusion_distributed::DistributedTaskContext;
use futures::StreamExt;
use loam_pipeline::dedup::cluster::{Decision, DecisionsWriter, Status};
use loam_pipeline::stage::ShardId;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

/// One own shard's decisions file: which table feeds it and how many rows it has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardOut {
    pub f: u32,
    pub index: usize,
    pub of: usize,
    pub rows: u64,
}

/// What a sink writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Target {
    /// `dir/part-<task>-<partition>.parquet`, one file per non-empty partition.
    Parquet { dir: PathBuf },
    /// Rows `(f, row, status, sidh, sdump)`, hash-partitioned on `f` and sorted by
    /// `(f, row)`, become `cluster_dir/<shard>.decisions`.
    Decisions {
        cluster_dir: PathBuf,
        shards: Vec<ShardOut>,
    },
    /// Edges `(label, a, b)`, hash-partitioned and sorted on their component's `label`:
    /// each component's merges by dump ([`crate::merges`]) are counted one component at a
    /// time, and each partition writes its `(w, n)` histogram to `dir` as Parquet.
    Merges { dir: PathBuf },
    /// Rows partitioned on the `group` columns and sorted by them and `order`: every row
    /// but the first of its group becomes `(a, b)` = (its `node`, the first row's `node`),
    /// written to `dir` as Parquet files named `<name>-<task>-<partition>`. A star per
    /// group, in constant memory behind a sort that spills.
    Stars {
        dir: PathBuf,
        name: String,
        group: Vec<String>,
        order: String,
    },
}

impl Target {
    /// The columns the input is partitioned on, and those it is then sorted by after them.
    fn grouping(&self) -> Option<(Vec<&str>, Vec<&str>)> {
        match self {
            Target::Parquet { .. } => None,
            Target::Decisions { .. } => Some((vec!["f"], vec!["row"])),
            Target::Merges { .. } => Some((vec!["label"], vec![])),
            Target::Stars { group, order, .. } => {
                Some((group.iter().map(String::as_str).collect(), vec![order.as_str()]))
            }
        }
    }
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]))
}

/// The write-only table a query is inserted into.
#[derive(Debug)]
pub struct SinkTable {
    pub schema: SchemaRef,
    pub target: Target,
}

#[async_trait]
impl TableProvider for SinkTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan_err!("a loam sink table is write-only")
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(SinkExec::new(input, self.target.clone())?))
    }
}

/// Writes its input's partitions where they run; one `count` row per partition.
#[derive(Debug)]
pub struct SinkExec {
    pub(crate) input: Arc<dyn ExecutionPlan>,
    pub(crate) target: Target,
    props: Arc<PlanProperties>,
}

impl SinkExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, target: Target) -> Result<Self> {
        let partitions = input.properties().partitioning.partition_count();
        let props = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self { input, target, props })
    }

    fn column(&self, name: &str) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(Column::new_with_schema(name, &self.input.schema())?))
    }
}

impl DisplayAs for SinkExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.target {
            Target::Parquet { dir } => write!(f, "LoamSinkExec: parquet={}", dir.display()),
            Target::Decisions { cluster_dir, shards } => write!(
                f,
                "LoamSinkExec: decisions={} ({} shards)",
                cluster_dir.display(),
                shards.len()
            ),
            Target::Merges { dir } => write!(f, "LoamSinkExec: merges by dump={}", dir.display()),
            Target::Stars {
                dir,
                name,
                group,
                order,
            } => write!(
                f,
                "LoamSinkExec: stars {name} by {group:?} first by {order}={}",
                dir.display()
            ),
        }
    }
}

impl ExecutionPlan for SinkExec {
    fn name(&self) -> &str {
        "LoamSinkExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        let Some((keys, _)) = self.target.grouping() else {
            return vec![Distribution::UnspecifiedDistribution];
        };
        match keys.into_iter().map(|k| self.column(k)).collect::<Result<Vec<_>>>() {
            Ok(k) => vec![Distribution::KeyPartitioned(k)],
            Err(_) => vec![Distribution::UnspecifiedDistribution],
        }
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let Some((keys, then)) = self.target.grouping() else {
            return vec![None];
        };
        let cols: Result<Vec<_>> = keys.into_iter().chain(then).map(|c| self.column(c)).collect();
        let Ok(cols) = cols else {
            return vec![None];
        };
        let req = LexRequirement::new(
            cols.into_iter()
                .map(|c| PhysicalSortRequirement::new(c, Some(Default::default()))),
        );
        vec![req.map(OrderingRequirements::new)]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.into_iter().next() else {
            return plan_err!("LoamSinkExec needs one input");
        };
        Ok(Arc::new(SinkExec::new(input, self.target.clone())?))
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&ctx))?;
        let task = DistributedTaskContext::from_ctx(&ctx).task_index;
        let target = self.target.clone();
        let fut = async move {
            // A test hook: a worker stops here (and is killed by the test) mid-query.
            loam_pipeline::stage::failpoint("dedup_worker_sink", ShardId::new(0, 1).map_err(external)?);
            let rows = match target {
                Target::Parquet { dir } => {
                    write_parquet(input, &dir, &format!("part-{task:05}-{partition:05}")).await?
                }
                Target::Stars { dir, name, group, .. } => {
                    write_parquet(stars(input, group), &dir, &format!("{name}-{task:05}-{partition:05}")).await?
                }
                Target::Decisions { cluster_dir, shards } => write_decisions(input, &cluster_dir, &shards).await?,
                Target::Merges { dir } => count_merges(input, &dir, task, partition).await?,
            };
            RecordBatch::try_new(count_schema(), vec![Arc::new(UInt64Array::from(vec![rows]))])
                .map_err(DataFusionError::from)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(fut),
        )))
    }
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn io_err(path: &Path, e: std::io::Error) -> DataFusionError {
    external(loam_pipeline::PipelineError::io(path, e))
}

/// Streams one partition into `dir/<stem>.parquet`, renamed into place when complete.
async fn write_parquet(mut input: SendableRecordBatchStream, dir: &Path, stem: &str) -> Result<u64> {
    let dest = dir.join(format!("{stem}.parquet"));
    let tmp = dir.join(format!(".{stem}.parquet.tmp"));
    let mut writer: Option<ArrowWriter<File>> = None;
    let mut rows = 0u64;
    while let Some(batch) = input.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if writer.is_none() {
            let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
            // Intermediate relations are read once or twice: fast compression, no dictionaries.
            let props = WriterProperties::builder()
                .set_compression(Compression::LZ4_RAW)
                .set_dictionary_enabled(false)
                .build();
            writer = Some(ArrowWriter::try_new(file, batch.schema(), Some(props))?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch)?;
        }
        rows += batch.num_rows() as u64;
    }
    if let Some(w) = writer {
        w.close()?;
        fs::rename(&tmp, &dest).map_err(|e| io_err(&dest, e))?;
    }
    Ok(rows)
}

/// Streams rows sorted by `(f, row)` into one decisions file per shard.
async fn write_decisions(mut input: SendableRecordBatchStream, cluster_dir: &Path, shards: &[ShardOut]) -> Result<u64> {
    let by_f: std::collections::HashMap<u32, &ShardOut> = shards.iter().map(|s| (s.f, s)).collect();
    let mut open: Option<(u32, DecisionsWriter, u64)> = None;
    let mut rows = 0u64;
    let col = |b: &RecordBatch, name: &str, ty: &DataType| -> Result<datafusion::arrow::array::ArrayRef> {
        let c = b
            .column_by_name(name)
            .ok_or_else(|| DataFusionError::Internal(format!("decisions input without `{name}`")))?;
        Ok(cast(c, ty)?)
    };
    while let Some(batch) = input.next().await {
        let b = batch?;
        let f = col(&b, "f", &DataType::UInt32)?;
        let row = col(&b, "row", &DataType::UInt32)?;
        let status = col(&b, "status", &DataType::UInt8)?;
        let sidh = col(&b, "sidh", &DataType::UInt64)?;
        let sdump = col(&b, "sdump", &DataType::UInt32)?;
        let (f, row) = (f.as_primitive::<UInt32Type>(), row.as_primitive::<UInt32Type>());
        let status = status.as_primitive::<UInt8Type>();
        let (sidh, sdump) = (sidh.as_primitive::<UInt64Type>(), sdump.as_primitive::<UInt32Type>());
        for i in 0..b.num_rows() {
            let t = f.value(i);
            if open.as_ref().is_none_or(|(cur, _, _)| *cur != t) {
                if let Some((_, w, _)) = open.take() {
                    w.finish().map_err(external)?;
                }
                let s = by_f.get(&t).ok_or_else(|| {
                    DataFusionError::Internal(format!("decisions for table {t}, which is no own shard"))
                })?;
                let shard = ShardId::new(s.index, s.of).map_err(external)?;
                open = Some((
                    t,
                    DecisionsWriter::create(cluster_dir, shard, s.rows).map_err(external)?,
                    0,
                ));
            }
            let Some((_, w, next)) = open.as_mut() else { continue };
            if u64::from(row.value(i)) != *next {
                return Err(DataFusionError::Internal(format!(
                    "decisions of table {t} arrived out of order (row {} where {} was due)",
                    row.value(i),
                    next
                )));
            }
            let status = Status::from_u8(status.value(i))
                .ok_or_else(|| DataFusionError::Internal(format!("status {} out of range", status.value(i))))?;
            w.push(Decision {
                status,
                cluster: sidh.value(i),
                survivor_dump: u16::try_from(sdump.value(i))
                    .map_err(|_| DataFusionError::Internal("dump index over 65535".into()))?,
            })
            .map_err(external)?;
            *next += 1;
            rows += 1;
        }
    }
    if let Some((_, w, _)) = open.take() {
        w.finish().map_err(external)?;
    }
    Ok(rows)
}

/// Streams edges sorted by component label; per component, its merges by dump; writes the
/// partition's histogram `(w, n)`. Holds one component's edges at a time.
async fn count_merges(mut input: SendableRecordBatchStream, dir: &Path, task: usize, partition: usize) -> Result<u64> {
    let mut hist: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    let (mut a, mut b): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    let mut current: Option<u64> = None;
    let mut edges = 0u64;
    let mut flush = |a: &mut Vec<u64>, b: &mut Vec<u64>| {
        for w in crate::merges::merge_dumps(a, b) {
            *hist.entry(w).or_default() += 1;
        }
        a.clear();
        b.clear();
    };
    while let Some(batch) = input.next().await {
        let batch = batch?;
        let col = |name: &str| -> Result<datafusion::arrow::array::ArrayRef> {
            let c = batch
                .column_by_name(name)
                .ok_or_else(|| DataFusionError::Internal(format!("merges input without `{name}`")))?;
            Ok(cast(c, &DataType::UInt64)?)
        };
        let (label, ea, eb) = (col("label")?, col("a")?, col("b")?);
        let (label, ea, eb) = (
            label.as_primitive::<UInt64Type>(),
            ea.as_primitive::<UInt64Type>(),
            eb.as_primitive::<UInt64Type>(),
        );
        for i in 0..batch.num_rows() {
            if current != Some(label.value(i)) {
                flush(&mut a, &mut b);
                current = Some(label.value(i));
            }
            a.push(ea.value(i));
            b.push(eb.value(i));
            edges += 1;
        }
    }
    flush(&mut a, &mut b);
    if !hist.is_empty() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("w", DataType::UInt32, false),
            Field::new("n", DataType::UInt64, false),
        ]));
        let w: datafusion::arrow::array::UInt32Array = hist.keys().copied().collect();
        let n: UInt64Array = hist.values().copied().collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(w), Arc::new(n)])?;
        let dest = dir.join(format!("part-{task:05}-{partition:05}.parquet"));
        let tmp = dir.join(format!(".part-{task:05}-{partition:05}.parquet.tmp"));
        let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let mut w = ArrowWriter::try_new(file, schema, None)?;
        w.write(&batch)?;
        w.close()?;
        fs::rename(&tmp, &dest).map_err(|e| io_err(&dest, e))?;
    }
    Ok(edges)
}

/// The `(a, b)` rows of [`Target::Stars`] from input sorted by `group` (then its order).
fn stars(input: SendableRecordBatchStream, group: Vec<String>) -> SendableRecordBatchStream {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::UInt64, false),
        Field::new("b", DataType::UInt64, false),
    ]));
    let out = Arc::clone(&schema);
    // The current group's key and its first node, carried across batches.
    let (mut key, mut center): (Vec<u64>, Option<u64>) = (Vec::new(), None);
    let mut cur = vec![0u64; group.len()];
    let edges = input.map(move |batch| {
        let batch = batch?;
        let col = |name: &str| -> Result<datafusion::arrow::array::ArrayRef> {
            let c = batch
                .column_by_name(name)
                .ok_or_else(|| DataFusionError::Internal(format!("stars input without `{name}`")))?;
            Ok(cast(c, &DataType::UInt64)?)
        };
        let keys = group.iter().map(|g| col(g)).collect::<Result<Vec<_>>>()?;
        let keys: Vec<_> = keys.iter().map(|k| k.as_primitive::<UInt64Type>()).collect();
        let node = col("node")?;
        let node = node.as_primitive::<UInt64Type>();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..batch.num_rows() {
            for (c, k) in cur.iter_mut().zip(&keys) {
                *c = k.value(i);
            }
            match center {
                Some(c) if cur == key => {
                    a.push(node.value(i));
                    b.push(c);
                }
                _ => {
                    key.clone_from(&cur);
                    center = Some(node.value(i));
                }
            }
        }
        RecordBatch::try_new(
            Arc::clone(&out),
            vec![Arc::new(UInt64Array::from(a)), Arc::new(UInt64Array::from(b))],
        )
        .map_err(DataFusionError::from)
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, edges))
}
