//! The cluster step's band-bucket grouping three ways, on the same (band key, document)
//! records extracted from a real loam run, under the same memory limit:
//!
//! - `loam`: loam's external sort (pipeline/src/sort.rs, included as source);
//! - `df-sort`: DataFusion 55.2, `ORDER BY key, doc` with a memory pool and spilling;
//! - `df-groupby`: DataFusion 55.2, `GROUP BY key HAVING count > 1` with `array_agg(doc)`.
//!
//! Each prints the groups, the edges (Σ size − 1 over groups of two or more) and a
//! checksum of the groups, so the three can be checked to agree.
//!
//! ```text
//! grouping-bench extract SIGNATURE_DIR OUT.parquet
//! grouping-bench {loam|df-sort|df-groupby} RECORDS.parquet BUDGET_MB TMP_DIR
//! ```
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::functions_aggregate::expr_fn::{array_agg, count};
use datafusion::prelude::*;
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

/// Stand-in for loam-pipeline's error module, so sort.rs compiles here unchanged.
mod error {
    #[derive(Debug, thiserror::Error)]
    pub enum PipelineError {
        #[error("{path}: {source}")]
        Io {
            path: std::path::PathBuf,
            source: std::io::Error,
        },
    }
    impl PipelineError {
        pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
            Self::Io {
                path: path.into(),
                source,
            }
        }
    }
    pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
}

#[path = "../../../../pipeline/src/sort.rs"]
#[allow(dead_code)]
mod sort;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Running digest of groups: order-independent within the stream's group order.
#[derive(Default, Debug)]
struct Digest {
    groups: u64,
    edges: u64,
    sum: u64,
}

impl Digest {
    fn group(&mut self, key: u64, docs: &mut [u32]) {
        if docs.len() < 2 {
            return;
        }
        docs.sort_unstable();
        self.groups += 1;
        self.edges += docs.len() as u64 - 1;
        let mut h = key;
        for &d in docs.iter() {
            h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(u64::from(d));
        }
        self.sum = self.sum.wrapping_add(h);
    }
}

fn extract(sig_dir: &Path, out: &Path) -> Res<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sig_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::UInt64, false),
        Field::new("doc", DataType::UInt32, false),
    ]));
    let mut w = ArrowWriter::try_new(File::create(out)?, schema.clone(), None)?;
    let mut doc = 0u32;
    for f in files {
        let r = ParquetRecordBatchReaderBuilder::try_new(File::open(&f)?)?.build()?;
        for b in r {
            let b = b?;
            let bands = b.column_by_name("bands").ok_or("bands")?.as_binary::<i32>();
            let (mut keys, mut docs) = (Vec::new(), Vec::new());
            for i in 0..b.num_rows() {
                for c in bands.value(i).chunks_exact(8) {
                    keys.push(u64::from_le_bytes(c.try_into()?));
                    docs.push(doc);
                }
                doc += 1;
            }
            w.write(&RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(UInt64Array::from(keys)), Arc::new(UInt32Array::from(docs))],
            )?)?;
        }
    }
    w.close()?;
    println!("{doc} documents");
    Ok(())
}

fn read_records(path: &Path, mut f: impl FnMut(u64, u32) -> Res<()>) -> Res<()> {
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?
        .with_batch_size(8192)
        .build()?;
    for b in r {
        let b = b?;
        let k = b.column(0).as_primitive::<UInt64Type>();
        let d = b.column(1).as_primitive::<UInt32Type>();
        for i in 0..b.num_rows() {
            f(k.value(i), d.value(i))?;
        }
    }
    Ok(())
}

fn with_loam(path: &Path, budget: usize, tmp: &Path) -> Res<Digest> {
    let mut s = sort::ExternalSorter::<(u64, u32)>::new(tmp, "bench", budget);
    read_records(path, |k, d| Ok(s.push((k, d))?))?;
    let sorted = s.finish()?;
    eprintln!("spilled {} MB", sorted.spilled_bytes() >> 20);
    let mut digest = Digest::default();
    let mut docs = Vec::new();
    sorted.for_each_group(
        |r| r.0,
        |g| {
            docs.clear();
            docs.extend(g.iter().map(|r| r.1));
            digest.group(g[0].0, &mut docs);
            Ok(())
        },
    )?;
    Ok(digest)
}

async fn context(budget: usize, tmp: &Path) -> Res<SessionContext> {
    let rt = RuntimeEnvBuilder::new()
        .with_memory_limit(budget, 1.0)
        .with_temp_file_path(tmp)
        .build_arc()?;
    let cfg = SessionConfig::new().with_target_partitions(1);
    Ok(SessionContext::new_with_config_rt(cfg, rt))
}

async fn with_df_sort(path: &Path, budget: usize, tmp: &Path) -> Res<Digest> {
    let ctx = context(budget, tmp).await?;
    let df = ctx
        .read_parquet(path.to_str().ok_or("path")?, ParquetReadOptions::default())
        .await?
        .sort(vec![col("key").sort(true, false), col("doc").sort(true, false)])?;
    let mut stream = df.execute_stream().await?;
    let mut digest = Digest::default();
    let (mut cur, mut docs): (Option<u64>, Vec<u32>) = (None, Vec::new());
    while let Some(b) = stream.next().await {
        let b = b?;
        let k = b.column(0).as_primitive::<UInt64Type>();
        let d = b.column(1).as_primitive::<UInt32Type>();
        for i in 0..b.num_rows() {
            if cur != Some(k.value(i)) {
                if let Some(c) = cur {
                    digest.group(c, &mut docs);
                }
                docs.clear();
                cur = Some(k.value(i));
            }
            docs.push(d.value(i));
        }
    }
    if let Some(c) = cur {
        digest.group(c, &mut docs);
    }
    Ok(digest)
}

async fn with_df_groupby(path: &Path, budget: usize, tmp: &Path) -> Res<Digest> {
    let ctx = context(budget, tmp).await?;
    let df = ctx
        .read_parquet(path.to_str().ok_or("path")?, ParquetReadOptions::default())
        .await?
        .aggregate(
            vec![col("key")],
            vec![count(col("doc")).alias("n"), array_agg(col("doc")).alias("docs")],
        )?
        .filter(col("n").gt(lit(1i64)))?;
    let mut stream = df.execute_stream().await?;
    let mut digest = Digest::default();
    let mut docs = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b?;
        let k = b.column_by_name("key").ok_or("key")?.as_primitive::<UInt64Type>().clone();
        let lists = b.column_by_name("docs").ok_or("docs")?.as_list::<i32>().clone();
        for i in 0..b.num_rows() {
            let l = lists.value(i);
            let l = l.as_primitive::<UInt32Type>();
            docs.clear();
            docs.extend((0..l.len()).map(|j| l.value(j)));
            digest.group(k.value(i), &mut docs);
        }
    }
    Ok(digest)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: grouping-bench extract SIG_DIR OUT | {loam|df-sort|df-groupby} RECORDS BUDGET_MB TMP";
    let mode = args.get(1).ok_or(usage)?;
    if mode == "extract" {
        return extract(Path::new(args.get(2).ok_or(usage)?), Path::new(args.get(3).ok_or(usage)?));
    }
    let path = PathBuf::from(args.get(2).ok_or(usage)?);
    let budget: usize = args.get(3).ok_or(usage)?.parse::<usize>()? << 20;
    let tmp = PathBuf::from(args.get(4).ok_or(usage)?);
    std::fs::create_dir_all(&tmp)?;
    let t = Instant::now();
    let d = match mode.as_str() {
        "loam" => with_loam(&path, budget, &tmp)?,
        "df-sort" => with_df_sort(&path, budget, &tmp).await?,
        "df-groupby" => with_df_groupby(&path, budget, &tmp).await?,
        _ => return Err(usage.into()),
    };
    println!(
        "{mode}: {} groups, {} edges, checksum {:016x}, {:.2} s",
        d.groups,
        d.edges,
        d.sum,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
