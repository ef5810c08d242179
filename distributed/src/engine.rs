//! Running one query on the cluster: either its rows stay on the workers (written where they
//! are computed, then registered as the next query's table) or a small result comes back
//! to the coordinator. Keeps each query's distributed plan once, for the record, and adds
//! up the bytes its network boundaries carried.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{SchemaRef, UInt64Type};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion_distributed::{display_plan_ascii, rewrite_distributed_plan_with_metrics, DistributedMetricsFormat};

use crate::sink::{SinkTable, Target};
use crate::Error;

pub struct Engine {
    pub ctx: SessionContext,
    tmp: PathBuf,
    seq: usize,
    /// Arrow IPC bytes over every network boundary so far.
    pub shuffled_bytes: u64,
    /// Bytes DataFusion's operators spilled to disk so far.
    pub spilled_bytes: u64,
    /// The distributed plan of each kind of query, the first time it ran.
    pub plans: String,
    planned: BTreeSet<String>,
}

impl Engine {
    pub fn new(ctx: SessionContext, tmp: &Path) -> Self {
        Self {
            ctx,
            tmp: tmp.to_owned(),
            seq: 0,
            shuffled_bytes: 0,
            spilled_bytes: 0,
            plans: String::new(),
            planned: BTreeSet::new(),
        }
    }

    /// Runs `sql` with its rows written on the workers into a fresh folder, registered as
    /// table `name` (replacing an earlier one); returns how many rows it has.
    pub async fn materialize(&mut self, name: &str, sql: &str) -> Result<u64, Error> {
        let step = format!("query `{name}`");
        let df = self.ctx.sql(sql).await.map_err(|e| Error::engine(&step, e))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let dir = self.folder(name)?;
        let rows = self
            .insert(
                name,
                df,
                SinkTable {
                    schema: Arc::clone(&schema),
                    target: Target::Parquet { dir: dir.clone() },
                },
            )
            .await?;
        self.register(name, &dir, schema).await?;
        Ok(rows)
    }

    /// Runs `sql` into `target` on the workers; the rows written.
    pub async fn write(&mut self, name: &str, sql: &str, target: Target) -> Result<u64, Error> {
        let df = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| Error::engine(&format!("query `{name}`"), e))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        self.insert(name, df, SinkTable { schema, target }).await
    }

    /// A fresh folder for a relation the workers write.
    pub fn folder(&mut self, name: &str) -> Result<PathBuf, Error> {
        let dir = self.tmp.join(format!("{:04}-{name}", self.seq));
        self.seq += 1;
        fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
        Ok(dir)
    }

    /// Runs `df` into `sink` on the workers; the rows written.
    pub async fn insert(&mut self, name: &str, df: DataFrame, sink: SinkTable) -> Result<u64, Error> {
        let step = format!("query `{name}`");
        let (state, plan) = df.into_parts();
        let plan = LogicalPlanBuilder::insert_into(
            plan,
            format!("loam_sink_{name}"),
            provider_as_source(Arc::new(sink)),
            InsertOp::Append,
        )
        .and_then(|b| b.build())
        .map_err(|e| Error::engine(&step, e))?;
        let batches = self.run(name, DataFrame::new(state, plan)).await?;
        Ok(sum_u64(&batches, 0))
    }

    /// Runs a query whose (small) result comes back to the coordinator.
    pub async fn collect(&mut self, name: &str, sql: &str) -> Result<Vec<RecordBatch>, Error> {
        let df = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| Error::engine(&format!("query `{name}`"), e))?;
        self.run(name, df).await
    }

    pub async fn run(&mut self, name: &str, df: DataFrame) -> Result<Vec<RecordBatch>, Error> {
        let step = format!("query `{name}`");
        let started = std::time::Instant::now();
        let plan = df.create_physical_plan().await.map_err(|e| Error::engine(&step, e))?;
        let batches = collect(Arc::clone(&plan), self.ctx.task_ctx())
            .await
            .map_err(|e| Error::engine(&step, e))?;
        let plan = rewrite_distributed_plan_with_metrics(plan, DistributedMetricsFormat::Aggregated)
            .await
            .map_err(|e| Error::engine(&step, e))?;
        let kind = name.trim_end_matches(|c: char| c.is_ascii_digit()).to_owned();
        if self.planned.insert(kind) {
            let _ = writeln!(self.plans, "== {name}\n{}", display_plan_ascii(plan.as_ref(), true));
        }
        let (shuffled, spilled) = metric_sums(&plan);
        eprintln!(
            "dedup cluster (distributed): {name}: {:.2} s, {} MB shuffled",
            started.elapsed().as_secs_f64(),
            shuffled >> 20
        );
        self.shuffled_bytes += shuffled;
        self.spilled_bytes += spilled;
        Ok(batches)
    }

    /// Registers the Parquet files of `dir` as table `name`.
    pub async fn register(&mut self, name: &str, dir: &Path, schema: SchemaRef) -> Result<(), Error> {
        let step = format!("registering `{name}`");
        let url = format!("{}/", dir.display());
        let url = ListingTableUrl::parse(&url).map_err(|e| Error::engine(&step, e))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        let table = ListingTable::try_new(config).map_err(|e| Error::engine(&step, e))?;
        let _ = self.ctx.deregister_table(name);
        self.ctx
            .register_table(name, Arc::new(table))
            .map_err(|e| Error::engine(&step, e))?;
        Ok(())
    }
}

/// Sum of a UInt64 (or castable) column over batches.
pub fn sum_u64(batches: &[RecordBatch], col: usize) -> u64 {
    batches
        .iter()
        .filter_map(|b| {
            let c = b.column(col);
            datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::UInt64).ok()
        })
        .map(|c| {
            let c = c.as_primitive::<UInt64Type>();
            (0..c.len()).filter(|&i| c.is_valid(i)).map(|i| c.value(i)).sum::<u64>()
        })
        .sum()
}

/// (bytes over network boundaries, bytes spilled) in a plan with collected metrics.
fn metric_sums(plan: &Arc<dyn ExecutionPlan>) -> (u64, u64) {
    let (mut shuffled, mut spilled) = (0u64, 0u64);
    let mut stack = vec![Arc::clone(plan)];
    while let Some(p) = stack.pop() {
        // Summed by hand: `MetricsSet::sum_by_name` skips custom metrics (the network
        // boundaries' `bytes_transferred`) and spill counters.
        for m in p.metrics().iter().flat_map(|set| set.iter()) {
            match m.value().name() {
                "bytes_transferred" => shuffled += m.value().as_usize() as u64,
                "spilled_bytes" => spilled += m.value().as_usize() as u64,
                _ => {}
            }
        }
        stack.extend(p.children().into_iter().cloned());
    }
    (shuffled, spilled)
}
