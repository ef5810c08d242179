//! How loam's own plan nodes cross the network: the coordinator encodes a stage's scans
//! and sinks, a worker decodes them. Registered on both sides.
use std::sync::Arc;

use datafusion::common::{internal_err, DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use crate::scan::{ScanSpec, SigScanExec};
use crate::sink::{SinkExec, Target};

#[derive(Serialize, Deserialize)]
enum Wire {
    Scan {
        spec: ScanSpec,
        partitions: usize,
        projection: Option<Vec<usize>>,
    },
    Sink {
        target: Target,
    },
}

#[derive(Debug, Default)]
pub struct LoamCodec;

impl PhysicalExtensionCodec for LoamCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let wire: Wire = serde_json::from_slice(buf)
            .map_err(|e| DataFusionError::Internal(format!("undecodable loam plan node: {e}")))?;
        match (wire, inputs) {
            (
                Wire::Scan {
                    spec,
                    partitions,
                    projection,
                },
                [],
            ) => Ok(Arc::new(SigScanExec::new(Arc::new(spec), partitions, projection)?)),
            (Wire::Sink { target }, [input]) => Ok(Arc::new(SinkExec::new(Arc::clone(input), target)?)),
            _ => internal_err!("loam plan node with {} inputs", inputs.len()),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let wire = if let Some(scan) = node.downcast_ref::<SigScanExec>() {
            Wire::Scan {
                spec: (*scan.spec).clone(),
                partitions: scan.partitions,
                projection: scan.projection.clone(),
            }
        } else if let Some(sink) = node.downcast_ref::<SinkExec>() {
            Wire::Sink {
                target: sink.target.clone(),
            }
        } else {
            return internal_err!("no loam codec for {}", node.name());
        };
        serde_json::to_writer(buf, &wire).map_err(|e| DataFusionError::Internal(format!("loam plan node: {e}")))
    }
}
