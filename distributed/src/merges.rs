//! `loam_dump_merges(a, b)`: for the edges of one connected component, the dumps at which
//! adding edges dump by dump merges two parts of it (Kruskal in dump order). Summed over
//! components, the merges at dump k are what dedup removes when dump k joins the first
//! k − 1: the dedup-rate-vs-dumps curve, from the same edges as the decisions.
use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt32Type, UInt64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};

pub const NAME: &str = "loam_dump_merges";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DumpMerges {
    signature: Signature,
}

pub fn udaf() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::from(DumpMerges {
        signature: Signature::exact(vec![DataType::UInt64, DataType::UInt64], Volatility::Immutable),
    }))
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(t, true)))
}

impl AggregateUDFImpl for DumpMerges {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_of(DataType::UInt32))
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<Merges>::default())
    }

    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new("a", list_of(DataType::UInt64), true)),
            Arc::new(Field::new("b", list_of(DataType::UInt64), true)),
        ])
    }
}

/// The edges of one group, held until evaluation.
#[derive(Debug, Default)]
struct Merges {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl Merges {
    fn extend(&mut self, a: &dyn Array, b: &dyn Array) {
        let (a, b) = (a.as_primitive::<UInt64Type>(), b.as_primitive::<UInt64Type>());
        for i in 0..a.len().min(b.len()) {
            if a.is_valid(i) && b.is_valid(i) {
                self.a.push(a.value(i));
                self.b.push(b.value(i));
            }
        }
    }
}

/// The dump (top 16 bits of a node) at which each merge happens, in dump order.
pub fn merge_dumps(a: &[u64], b: &[u64]) -> Vec<u32> {
    let mut edges: Vec<(u32, u64, u64)> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (((x >> 48).max(y >> 48)) as u32, x, y))
        .collect();
    edges.sort_unstable();
    let mut index: HashMap<u64, u32> = HashMap::with_capacity(edges.len() + 1);
    let mut parent: Vec<u32> = Vec::new();
    let mut id = |n: u64, parent: &mut Vec<u32>| {
        *index.entry(n).or_insert_with(|| {
            parent.push(parent.len() as u32);
            parent.len() as u32 - 1
        })
    };
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            let p = parent[x as usize];
            parent[x as usize] = parent[p as usize];
            x = p;
        }
        x
    }
    let mut out = Vec::new();
    for (w, x, y) in edges {
        let (i, j) = (id(x, &mut parent), id(y, &mut parent));
        let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
        if ri != rj {
            parent[ri.max(rj) as usize] = ri.min(rj);
            out.push(w);
        }
    }
    out
}

fn u64_list(v: &[u64]) -> ScalarValue {
    ScalarValue::List(Arc::new(ListArray::from_iter_primitive::<UInt64Type, _, _>([Some(
        v.iter().map(|&x| Some(x)),
    )])))
}

impl Accumulator for Merges {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if let [a, b] = values {
            self.extend(a.as_ref(), b.as_ref());
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let w = merge_dumps(&self.a, &self.b);
        Ok(ScalarValue::List(Arc::new(ListArray::from_iter_primitive::<
            UInt32Type,
            _,
            _,
        >([Some(w.into_iter().map(Some))]))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + (self.a.capacity() + self.b.capacity()) * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![u64_list(&self.a), u64_list(&self.b)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if let [a, b] = states {
            let (a, b) = (a.as_list::<i32>(), b.as_list::<i32>());
            for i in 0..a.len().min(b.len()) {
                if a.is_valid(i) && b.is_valid(i) {
                    self.extend(a.value(i).as_ref(), b.value(i).as_ref());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(dump: u64, x: u64) -> u64 {
        dump << 48 | x
    }

    #[test]
    fn merges_follow_dump_order() {
        // Dump 0: 1–2. Dump 1: 3 joins 1. Dump 2: 4–5 apart, then 5 joins 2 (and 4 with it);
        // the second edge into an already joined part merges nothing.
        let a = [n(0, 2), n(1, 3), n(2, 5), n(2, 5), n(2, 4)];
        let b = [n(0, 1), n(0, 1), n(2, 4), n(0, 2), n(0, 1)];
        let mut w = merge_dumps(&a, &b);
        w.sort_unstable();
        assert_eq!(w, vec![0, 1, 2, 2]);
    }
}
